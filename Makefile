# Two commands: `make demo` (install + quickstart) and `make test` (install + tests).
# Everything but torch installs from requirements.lock (exact versions, sha256-checked); torch is installed first
# from TORCH_SPEC (the 2.13.0 CPU wheel here), so a GPU machine can take a CUDA build:
# `make TORCH_SPEC=torch==2.13.0 ...`. Refresh the lock after changing pyproject.toml with `make lock`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN = $(VENV)/bin
OUT ?= runs/quickstart
UV_SPEC ?= uv==0.13.9
# how `make lock` finds the CPU torch build it resolves against (it is left out of the lock itself): PyTorch's CPU
# index by default; behind a mirror, point LOCK_FLAGS at it, e.g. LOCK_FLAGS="--find-links DIR --extra-index-url URL
# --index-strategy unsafe-best-match"
LOCK_TORCH ?= torch==2.13.0+cpu
LOCK_FLAGS ?= --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match

.PHONY: install demo test test-fast bench lock clean

$(BIN)/ftaudit: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

install: $(BIN)/ftaudit

demo: install
	$(BIN)/ftaudit quickstart --out $(OUT)

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not integration"

bench: install
	$(BIN)/python bench/throughput.py

# (not `install`: after a new dependency in pyproject.toml the old lock cannot install, which is why one locks)
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(UV_SPEC)"
	echo "$(LOCK_TORCH)" > $(VENV)/torch-override.txt
	$(BIN)/uv pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --override $(VENV)/torch-override.txt --no-emit-package torch \
	  $(LOCK_FLAGS) --no-header -o requirements.lock

clean:
	rm -rf $(VENV) runs
