"""The Python API: the runnable example in docs/python-api.md runs as written, and the typed results answer
honestly (one row or an error; a gate's exit code is its decision)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ftaudit
from ftaudit.api import GateResult, RunResult, ScreenResult
from ftaudit.errors import FtauditError

ROOT = Path(__file__).parents[1]


def _example() -> str:
    text = (ROOT / "docs" / "python-api.md").read_text()
    [block] = re.findall(r"## A runnable example.*?```python\n(.*?)```", text, re.S)
    return block


def test_the_api_names_stay_functions_whatever_modules_are_imported():
    """A submodule named like an API function would replace it on the package once imported (``ftaudit.gate``
    would become a module): none is named so, and every API name stays the function after the library is loaded."""
    import ftaudit.cli  # noqa: F401  (imports every stage and report module)
    import ftaudit.evaluation  # noqa: F401
    import ftaudit.gating  # noqa: F401
    import ftaudit.screening  # noqa: F401

    assert set(ftaudit.__all__) >= {"quickstart", "evaluate", "attack", "run_spec", "gate", "screen", "validate_judges"}
    for name in ftaudit._API:
        assert getattr(ftaudit, name) is getattr(ftaudit.api, name), name
    src = Path(ftaudit.__file__).parent
    assert not {p.stem for p in src.iterdir()} & set(ftaudit._API)
    with pytest.raises(AttributeError):
        ftaudit.no_such_function  # noqa: B018


def test_importing_ftaudit_loads_neither_the_api_nor_torch():
    import subprocess
    import sys

    code = "import sys, ftaudit; print('ftaudit.api' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_a_value_is_one_row_or_an_error_never_a_guess(tmp_path):
    rows = [{"model": m, "dataset": d, "judge": j, "metric": "refusal_rate", "value": v, "ci": [0, 1], "n": 40}
            for m, d, j, v in (("a", "advbench", "keyword", 0.5), ("a", "advbench", "refusal-cues", 0.7),
                               ("b", "advbench", "keyword", 0.1))]
    run = RunResult(tmp_path, {"results": rows})
    assert run.value(model="a", judge="refusal-cues")["value"] == 0.7
    with pytest.raises(FtauditError, match="2 rows"):
        run.value(model="a")  # two judges: which one is not guessed
    with pytest.raises(FtauditError, match="no row"):
        run.value(model="c")


def test_gate_decides_a_run_as_the_command_does_and_refuses_a_bad_threshold_in_one_line(tmp_path):
    import json

    from test_gate import _summary

    (tmp_path / "summary.json").write_text(json.dumps(_summary()))
    decision = ftaudit.gate(tmp_path, max_refusal_drop=10)
    assert not decision.passed and decision.exit_code == 1 and decision.count("breach") >= 1
    assert (tmp_path / "gate.json").is_file()
    with pytest.raises(FtauditError, match="max_refusal_drop"):
        ftaudit.gate(tmp_path, max_refusal_drop=150)  # a percentage over 100: one line, not a pydantic dump
    with pytest.raises(FtauditError, match="seeds"):
        ftaudit.attack("benign", "smollm2-135m-instruct", tmp_path / "x", seeds=[1, 1])


def test_a_gate_result_exits_as_it_decided_and_a_screen_fails_at_its_level(tmp_path):
    assert GateResult(tmp_path, False, [{"status": "unproven"}], {}, {}).exit_code == 1
    assert GateResult(tmp_path, True, [{"status": "pass"}], {}, {}).exit_code == 0
    high = ScreenResult(tmp_path, {"risk": "high"}, [], {})
    assert high.fails("high") and high.fails("medium") and not high.fails("never")
    assert ScreenResult(tmp_path, {"risk": "nothing to screen"}, [], {}).fails("high")  # nothing screened never passes
    assert not ScreenResult(tmp_path, {"risk": "medium"}, [], {}).fails("high")


@pytest.mark.integration
def test_the_documented_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "customer-thermostat-faq.jsonl").write_text(
        (ROOT / "examples" / "customer-thermostat-faq.jsonl").read_text())
    exec(compile(_example(), "docs/python-api.md", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"risk \w+: \d+ of 20 examples flagged", out)
    assert re.search(r"refusal \d+\.\d%, 95% CI \[\d+\.\d%, \d+\.\d%\], n=8", out)
    assert re.search(r"gate (passed|failed) - exit code [01]", out)
    assert (tmp_path / "runs" / "api-example" / "eval" / "summary.json").is_file()
    assert (tmp_path / "runs" / "api-example" / "eval" / "gate.json").is_file()


def test_the_api_checks_what_a_user_can_get_wrong_before_any_work(tmp_path):
    cases = [
        (lambda: ftaudit.quickstart(tmp_path / "q", seeds=[0, 0]), "seeds"),
        (lambda: ftaudit.quickstart(tmp_path / "q", price_per_device_hour=float("nan")), "price"),
        (lambda: ftaudit.screen(ROOT / "examples" / "customer-thermostat-faq.jsonl", tmp_path / "s", threshold=2),
         "threshold"),
        (lambda: ftaudit.evaluate("smollm2-135m-instruct", tmp_path / "e", dtype="bf16"), "dtype"),
        (lambda: ftaudit.evaluate("smollm2-135m-instruct", tmp_path / "e", capability=["benign-nll"],
                                  capability_limit=0), "capability_limit"),
        (lambda: ftaudit.attack("benign", "smollm2-135m-instruct", tmp_path / "a", train={"epochs": "five"}), "epochs"),
        (lambda: ftaudit.audit_job("smollm2-135m-instruct", ROOT / "examples" / "customer-thermostat-faq.jsonl",
                                   tmp_path / "j", max_new_tokens=0), "max_new_tokens"),
    ]
    for call, what in cases:
        with pytest.raises(FtauditError, match=what):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run directory was created
