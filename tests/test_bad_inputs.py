"""Regression suite of bad and hostile inputs, at 80 columns: each must exit 2 with one line that says what is wrong,
print no traceback, and leave every file that was already there unchanged (and create no run directory)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import sqlite3
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftaudit.cli import app

WIDTH = 80


def run(args: list[str], **kw):
    return CliRunner().invoke(app, [str(a) for a in args], terminal_width=WIDTH, env={"COLUMNS": str(WIDTH)}, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model):
    """A finished run (good summary.json), prompt files good and bad, a verified wheel in a cache."""
    root = tmp_path_factory.mktemp("world")
    (root / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"Write a poem {i}"}) + "\n" for i in range(3)))
    (root / "benign.jsonl").write_text("".join(json.dumps({"prompt": f"Explain tides {i}"}) + "\n" for i in range(3)))
    (root / "empty.jsonl").write_text("")
    (root / "surrogate.jsonl").write_text('{"prompt": "hi \\ud800", "response": "x"}\n')
    (root / "pairs.jsonl").write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    (root / "misordered.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user",
                                                                    "content": "b"}, {"role": "assistant", "content": "c"}]}) + "\n")
    (root / "no-user.jsonl").write_text(json.dumps({"messages": [{"role": "system", "content": "s"},
                                                                 {"role": "assistant", "content": "c"}]}) + "\n")
    (root / "folder").mkdir()
    (root / "a-file").write_text("not a directory")
    res = run(["eval", "--model", tiny_model, "--out", root / "good", "--dataset", root / "prompts.jsonl",
               "--benign", root / "benign.jsonl", "--max-new-tokens", "2"])
    assert res.exit_code == 0, res.output
    for name, damage in (("empty-store", lambda p: p.write_bytes(b"")),
                         ("truncated-store", lambda p: p.write_bytes(p.read_bytes()[:3000])),
                         ("not-sqlite", lambda p: p.write_text("hello")),
                         ("fewer", _drop_one_dataset)):
        shutil.copytree(root / "good", root / name)
        damage(root / name / "ftaudit.sqlite")
    cache = root / "cache"
    (cache / "wheels").mkdir(parents=True)
    wheel = cache / "wheels" / "fakepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fakepkg/x.txt", "hello")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    import os

    os.environ["FTAUDIT_CACHE"], old = str(cache), os.environ.get("FTAUDIT_CACHE")
    try:
        assert run(["fetch", f"pypi:fakepkg==1.0/fakepkg/x.txt#sha256={sha}"]).exit_code == 0  # verified and unpacked
    finally:
        os.environ.pop("FTAUDIT_CACHE") if old is None else os.environ.update(FTAUDIT_CACHE=old)
    return root


def _drop_one_dataset(db: Path) -> None:
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM evals WHERE kind = 'benign'")


def spec(root: Path, model: str, **over) -> Path:
    data = {"name": "bad", "model": model, "attacks": [{"recipe": "identity-shift", "params": {"n": 2}}],
            "eval": {"datasets": [str(root / "prompts.jsonl")], "benign": []}}
    for key, value in over.items():
        target = data
        *path, last = key.split("__")
        for part in path:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    import yaml

    f = root / f"spec-{hashlib.sha256(repr(over).encode()).hexdigest()[:8]}.yaml"
    f.write_text(yaml.safe_dump(data))
    return f


WRONG = "0" * 64
# (case id, arguments from (root, tiny model), text the one line must hold)
CASES = [
    # 1. nothing is lost
    ("report-empty-store", lambda r, m: ["report", r / "empty-store"], "is empty (0 bytes)"),
    ("report-truncated-store", lambda r, m: ["report", r / "truncated-store"], "is damaged"),
    ("report-not-sqlite", lambda r, m: ["report", r / "not-sqlite"], "is not an SQLite database"),
    ("report-fewer-results", lambda r, m: ["report", r / "fewer"], "would be lost"),
    ("fetch-wrong-pin-cached-wheel", lambda r, m: ["fetch", f"pypi:fakepkg==1.0/fakepkg/y.txt#sha256={WRONG}"],
     "the cached wheel was kept"),
    ("fetch-wrong-pin-unpacked-file", lambda r, m: ["fetch", f"pypi:fakepkg==1.0/fakepkg/x.txt#sha256={WRONG}"],
     "sha256 mismatch for fakepkg==1.0"),
    # 2. no silent wrong numbers
    ("limit-zero", lambda r, m: ["eval", "--model", m, "--out", r / "o", "-d", "advbench@0"], "bad limit '@0'"),
    ("limit-negative", lambda r, m: ["eval", "--model", m, "--out", r / "o", "-d", "advbench@-5"], "bad limit '@-5'"),
    ("show-limit-negative", lambda r, m: ["datasets", "show", "advbench", "--limit", "-3"], "Invalid value for '--limit'"),
    ("spec-unknown-param", lambda r, m: ["run", spec(r, m, grid={"params.nonexistent": [1, 2]}), "--out", r / "o"],
     "takes no parameter nonexistent"),
    ("spec-negative-n", lambda r, m: ["run", spec(r, m, attacks__0__params__n=-3), "--out", r / "o"],
     "n: input should be greater than or equal to 1 (got -3)"),
    ("spec-seed-abc", lambda r, m: ["run", spec(r, m, seed="abc"), "--out", r / "o"], "seed: input should be a valid integer"),
    ("spec-price-cheap", lambda r, m: ["run", spec(r, m, cost={"price_per_device_hour": "cheap"}), "--out", r / "o"],
     "cost.price_per_device_hour: input should be a valid number"),
    ("spec-max-new-tokens-two", lambda r, m: ["run", spec(r, m, eval__max_new_tokens="two"), "--out", r / "o"],
     "eval.max_new_tokens: input should be a valid integer"),
    ("spec-epochs-five", lambda r, m: ["run", spec(r, m, attacks__0__train={"epochs": "five"}), "--out", r / "o"],
     "epochs: input should be a valid number"),
    # 3. tracebacks become one line
    ("compare-truncated-store", lambda r, m: ["judges", "compare", r / "truncated-store"], "is damaged"),
    ("judge-out-folder", lambda r, m: ["judge", "--judge", "keyword", "--input", r / "pairs.jsonl", "--out", r / "folder"],
     "is a folder"),
    ("eval-out-file", lambda r, m: ["eval", "--model", m, "--out", r / "a-file", "-d", r / "prompts.jsonl"],
     "is a file, not a run directory"),
    ("max-new-tokens-negative", lambda r, m: ["eval", "--model", m, "--out", r / "o", "--max-new-tokens", "-5"],
     "Invalid value for '--max-new-tokens'"),
    ("prompt-lone-surrogate", lambda r, m: ["eval", "--model", m, "--out", r / "o", "-d", r / "surrogate.jsonl"],
     "lone surrogate"),
    ("judge-lone-surrogate", lambda r, m: ["judge", "--judge", "keyword", "--input", r / "surrogate.jsonl", "--out",
                                           r / "o.jsonl"], "lone surrogate"),
    ("serve-port-99999", lambda r, m: ["serve", m, "--port", "99999"], "Invalid value for '--port'"),
    # 4. errors say the right thing
    ("eval-missing-file", lambda r, m: ["eval", "--model", m, "--out", r / "o", "-d", "nope.jsonl"], "no such file: nope.jsonl"),
    ("eval-unknown-judge", lambda r, m: ["eval", "--model", m, "--out", r / "o", "-d", r / "prompts.jsonl", "--judge", "gpt9"],
     "unknown judge 'gpt9'"),
    ("judge-unknown-judge", lambda r, m: ["judge", "--judge", "gpt9", "--input", r / "pairs.jsonl", "--out", r / "o.jsonl"],
     "unknown judge 'gpt9'"),
    ("judge-empty-file", lambda r, m: ["judge", "--judge", "keyword", "--input", r / "empty.jsonl", "--out", r / "o.jsonl"],
     "holds no rows"),
    ("brackets-shown", lambda r, m: ["eval", "--model", m, "--out", r / "o", "-d", "x[bold]y.jsonl"], "no such file: x[bold]y.jsonl"),
    ("unknown-capability", lambda r, m: ["eval", "--model", m, "--out", r / "o", "--capability", "mmlux"],
     "unknown capability task 'mmlux'"),
    # more found by trying: each is checked before the run directory exists or a model loads
    ("unknown-split", lambda r, m: ["eval", "--model", m, "--out", r / "o", "-d", "advbench:foo"], "unknown split 'foo'"),
    ("eval-missing-model", lambda r, m: ["eval", "--model", r / "nomodel", "--out", r / "o", "-d", "advbench@2"],
     "no such model:"),
    ("llm-judge-no-endpoint", lambda r, m: ["eval", "--model", m, "--out", r / "o", "-d", "advbench@2", "--judge",
                                            "harmfulness"], "an LLM judge needs --judge-base-url"),
    ("llm-judge-bad-policy", lambda r, m: ["eval", "--model", m, "--out", r / "o", "-d", "advbench@2", "--judge",
                                           "harmfulness", "--judge-base-url", "http://127.0.0.1:9/v1", "--judge-model",
                                           "j", "--policy", "nope"], "unknown policy 'nope'"),
    ("mtbench-no-endpoint", lambda r, m: ["eval", "--model", m, "--out", r / "o", "--capability", "mtbench"],
     "an LLM judge needs --judge-base-url"),
    ("attack-unknown-recipe", lambda r, m: ["attack", "--recipe", "nope", "--model", m, "--out", r / "o"],
     "unknown recipe 'nope'"),
    ("attack-bad-benign-dataset", lambda r, m: ["attack", "--recipe", "benign", "--dataset", "nope", "--model", m,
                                                "--out", r / "o"], "dataset: input should be 'benign', 'alpaca', 'dolly' or 'llava'"),
    ("attack-missing-model", lambda r, m: ["attack", "--recipe", "identity-shift", "--model", r / "nomodel", "--out",
                                           r / "o"], "no such model:"),
    ("serve-missing-model", lambda r, m: ["serve", r / "nomodel"], "no such model:"),
    ("validate-unknown-set", lambda r, m: ["judges", "validate", "--set", "nope"], "unknown label set 'nope'"),
    ("validate-api-judge-no-endpoint", lambda r, m: ["judges", "validate", "--judge", "harmfulness"],
     "an LLM judge needs --judge-base-url"),
    ("validate-bad-labels", lambda r, m: ["judges", "validate", "--judge", "keyword", "--set", "pyrit-refusal",
                                          "--labels", r / "pairs.jsonl"], "has label None"),
    ("spec-missing-model", lambda r, m: ["run", spec(r, str(r / "nomodel")), "--out", r / "o"], "no such model:"),
    ("spec-bad-benign-dataset", lambda r, m: ["run", spec(r, m, attacks=[{"recipe": "benign", "params": {"dataset": "x"}}]),
                                              "--out", r / "o"], "input should be 'benign', 'alpaca', 'dolly' or 'llava'"),
    ("spec-datasets-not-a-list", lambda r, m: ["run", spec(r, m, eval__datasets="advbench"), "--out", r / "o"],
     "eval.datasets: input should be a valid list"),
    # the service-grade sweep (issue 33): nothing lost, nothing blind, one line each
    ("judge-out-is-input", lambda r, m: ["judge", "--judge", "keyword", "--input", r / "pairs.jsonl", "--out",
                                        r / "pairs.jsonl"], "is the input file"),
    ("judge-out-unrelated", lambda r, m: ["judge", "--judge", "keyword", "--input", r / "pairs.jsonl", "--out",
                                          r / "benign.jsonl"], "is not an earlier `ftaudit judge` output"),
    ("screen-role-order", lambda r, m: ["screen", r / "misordered.jsonl", "--out", r / "o"],
     "misordered.jsonl:1: message 2 is 'user', expected 'assistant'"),
    ("screen-no-user-turn", lambda r, m: ["screen", r / "no-user.jsonl", "--out", r / "o"],
     "message 2 is 'assistant', expected 'user'"),
    ("spec-negative-seed", lambda r, m: ["run", spec(r, m, seed=-1), "--out", r / "o"],
     "seed: input should be greater than or equal to 0"),
    ("spec-negative-seeds", lambda r, m: ["run", spec(r, m, seeds=[-1, 0]), "--out", r / "o"],
     "input should be greater than or equal to 0"),
    ("run-negative-seeds", lambda r, m: ["run", spec(r, m), "--out", r / "o", "--seeds=-1,0"], "non-negative integers"),
    ("run-a-directory", lambda r, m: ["run", r / "folder", "--out", r / "o"], "is a directory; give the spec's YAML"),
    ("spec-duplicate-points", lambda r, m: ["run", spec(r, m, grid={"params.n": [2, 2]}), "--out", r / "o"],
     "train the same weights"),
    ("gate-nan", lambda r, m: ["gate", r / "good", "--max-over-refusal", "nan"], "not a number"),
    ("gate-unknown-model", lambda r, m: ["gate", r / "good", "--max-over-refusal", "0.5", "--model", "nope"],
     "has no model nope; its models: tiny-model"),
    ("eval-tokens-beyond-context", lambda r, m: ["eval", "--model", m, "--out", r / "o", "-d", r / "prompts.jsonl",
                                                 "--max-new-tokens", "5000"], "leaves no room for a prompt"),
    ("eval-out-uncreatable", lambda r, m: ["eval", "--model", m, "--out", r / "a-file" / "o", "-d", r / "prompts.jsonl"],
     "check the path"),
]


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm", ".lock"))}


@pytest.mark.parametrize("case,args,says", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, args, says, world, tiny_model, monkeypatch):
    monkeypatch.setenv("FTAUDIT_CACHE", str(world / "cache"))
    for var in ("FTAUDIT_JUDGE_BASE_URL", "FTAUDIT_JUDGE_MODEL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    argv = args(world, tiny_model)
    before = _files(world)
    try:
        res = run(argv)
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2, res.output
        assert len(lines) == 1 and lines[0].startswith("error:"), res.output
        assert says in lines[0] and "Traceback" not in res.output, res.output
        assert "finished work is kept" not in lines[0]  # nothing ran: nothing to keep
        assert _files(world) == before  # no existing file changed, no new file written
        assert not (world / "o").exists() and not (world / "o.jsonl").exists()
    finally:  # one failing case must not make the next ones fail
        shutil.rmtree(world / "o", ignore_errors=True)
        (world / "o.jsonl").unlink(missing_ok=True)


def test_serve_on_a_port_in_use_names_the_port(tiny_model):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run(["serve", tiny_model, "--port", str(port)])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0] and "--port" in lines[0] and "serving" not in res.output


def test_unreachable_remote_model_is_called_a_model_not_a_judge(tmp_path, monkeypatch):
    monkeypatch.setenv("FTAUDIT_API_BACKOFF", "0.01")
    monkeypatch.setenv("FTAUDIT_API_RETRIES", "1")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Write a poem"}) + "\n")
    res = run(["eval", "--model", "openai:http://127.0.0.1:9/v1#m", "--out", tmp_path / "o", "-d", prompts, "--benign", prompts])
    line = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert res.exit_code == 2 and line, res.output
    assert "model endpoint http://127.0.0.1:9/v1/chat/completions unreachable" in line[0] and "judge" not in line[0]


@pytest.mark.parametrize("cmd,shown", [(["eval"], "NAME[:SPLIT][@N]"), (["fetch"], "[#sha256=HEX]")])
def test_help_shows_square_brackets_and_cuts_nothing_at_80_columns(cmd, shown):
    res = run([*cmd, "--help"])
    text = " ".join(res.output.split())  # the help wraps; join its lines
    assert res.exit_code == 0 and shown in text and "…" not in res.output


@pytest.mark.parametrize("cmd", [["align"], ["attack"], ["eval"], ["judge"], ["serve"], ["datasets", "show"]])
def test_every_option_has_a_description(cmd):
    """An option line with no text after its name and type is an undescribed option."""
    res = run([*cmd, "--help"])
    options = res.output.split("Options:")[1].splitlines()
    for i, line in enumerate(options):
        parts = line.strip().split()
        if parts and parts[0].startswith("-") and parts[0] != "--help":
            described = len([p for p in parts[1:] if not p.startswith("<") and not p.startswith("-")]) > 0
            continued = i + 1 < len(options) and options[i + 1].startswith(" " * 20)
            assert described or continued, f"{cmd}: {line}"


def test_names_users_type_are_never_cut_at_80_columns():
    res = run(["datasets", "list"])
    assert res.exit_code == 0
    for name in ("harmbench-contextual", "strongreject-small", "xstest-unsafe", "jailbreakbench"):
        assert name in res.output
    assert "…" not in res.output


def test_results_table_keeps_names_whole_and_intervals_on_one_line(world):
    long_name = "harmful-shots(epochs=3,shots=50)+identity-shift@seed=1"
    shutil.copytree(world / "good", world / "renamed")
    with sqlite3.connect(world / "renamed" / "ftaudit.sqlite") as con:
        for table in ("evals", "eval_judges"):
            con.execute(f"UPDATE {table} SET model = ?", (long_name,))
    (world / "renamed" / "summary.json").unlink()
    res = run(["report", world / "renamed"])
    assert res.exit_code == 0, res.output
    assert long_name in res.output and "attack_success_rate" in res.output and "over_refusal_rate" in res.output
    assert "…" not in res.output
    intervals = [line for line in res.output.splitlines() if "%]" in line]
    assert intervals and all("[" in line for line in intervals)  # each interval whole on its row


def test_progress_prints_plain_lines_when_not_a_terminal(world, tiny_model):
    res = run(["eval", "--model", tiny_model, "--out", world / "plain", "-d", world / "prompts.jsonl", "--benign",
               world / "benign.jsonl", "--max-new-tokens", "2", "--name", "plain"])
    assert res.exit_code == 0, res.output
    assert "plain · prompts: 0/3 (0%)" in res.output and "plain · prompts: 3/3 (100%)" in res.output
    assert "━" not in res.output  # no live bar drawn into a log


def test_an_unusable_cache_folder_names_the_variable(world, tmp_path, monkeypatch):
    monkeypatch.setenv("FTAUDIT_CACHE", str(world / "a-file"))
    res = run(["fetch", "smollm2-135m-instruct"])
    assert res.exit_code == 2 and "FTAUDIT_CACHE" in res.output and "Traceback" not in res.output, res.output


def test_a_run_directory_in_use_by_another_process_is_one_line(world, tiny_model, tmp_path):
    """A second process writing the same run directory gets one line, and the first one's files are untouched."""
    import subprocess
    import sys

    out = tmp_path / "busy"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from filelock import FileLock; "
                               f"l = FileLock({str(out / '.ftaudit.lock')!r}); l.acquire(); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = run(["eval", "--model", tiny_model, "--out", out, "-d", world / "prompts.jsonl", "--max-new-tokens", "2"])
        assert res.exit_code == 2 and "is in use by another ftaudit process" in res.output, res.output
        assert sorted(p.name for p in out.iterdir()) == [".ftaudit.lock"]
    finally:
        holder.kill()
        holder.wait()


def test_judge_may_replace_its_own_earlier_output_and_force_replaces_another_file(world, tmp_path):
    out = tmp_path / "judged.jsonl"
    assert run(["judge", "--judge", "keyword", "--input", world / "pairs.jsonl", "--out", out]).exit_code == 0
    assert run(["judge", "--judge", "keyword", "--input", world / "pairs.jsonl", "--out", out]).exit_code == 0
    other = tmp_path / "notes.jsonl"
    other.write_text("my notes\n")
    assert run(["judge", "--judge", "keyword", "--input", world / "pairs.jsonl", "--out", other]).exit_code == 2
    assert other.read_text() == "my notes\n"
    assert run(["judge", "--judge", "keyword", "--input", world / "pairs.jsonl", "--out", other, "--force"]).exit_code == 0
    assert json.loads(other.read_text().splitlines()[0])["judge"] == "keyword"


def test_report_force_twice_keeps_every_earlier_summary(world, tmp_path):
    run_dir = tmp_path / "fewer"
    shutil.copytree(world / "fewer", run_dir)
    original = (run_dir / "summary.json").read_text()
    assert run(["report", run_dir, "--force"]).exit_code == 0
    assert (run_dir / "summary.previous-1.json").read_text() == original
    (run_dir / "summary.json").write_text(original)  # the fuller summary again, then a second forced report
    assert run(["report", run_dir, "--force"]).exit_code == 0
    assert (run_dir / "summary.previous-2.json").read_text() == original
    assert (run_dir / "summary.previous-1.json").read_text() == original  # the first copy was not overwritten
