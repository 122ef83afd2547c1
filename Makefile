# Two commands: `make demo` (install + quickstart) and `make test` (install + tests).
# torch is pinned first to the CPU wheel (2.13.0) so nothing pulls CUDA packages on a CPU box;
# override with `make TORCH_SPEC=torch==<ver> ...` on a GPU machine.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN = $(VENV)/bin
OUT ?= runs/quickstart

.PHONY: install demo test test-fast bench clean

$(BIN)/ftaudit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
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

clean:
	rm -rf $(VENV) runs
