import pytest
from typer.testing import CliRunner

from ftaudit import __version__
from ftaudit.cli import app

runner = CliRunner()
COMMANDS = [["align"], ["attack"], ["eval"], ["report"], ["quickstart"], ["fetch"], ["datasets", "list"], ["datasets", "show"],
            ["run"], ["serve"], ["judge"], ["defend"], ["gate"], ["screen"], ["audit-job"], ["judges", "list"], ["judges", "validate"], ["judges", "compare"]]


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and __version__ in res.output


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help_with_an_example(cmd):
    res = runner.invoke(app, [*cmd, "--help"], terminal_width=200)
    assert res.exit_code == 0 and "Example: ftaudit" in res.output


def _one_line_error(res):
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "Traceback" not in res.output
    return lines[0]


def test_bad_model_path(tmp_path):
    line = _one_line_error(runner.invoke(app, ["eval", "--model", "/no/such/model", "--out", str(tmp_path / "o"),
                                               "--dataset", "advbench@1", "--benign", "benign@1"], terminal_width=400))
    assert "/no/such/model" in line


def test_unknown_dataset(tmp_path):
    line = _one_line_error(runner.invoke(app, ["datasets", "show", "nope"], terminal_width=400))
    assert "unknown dataset 'nope'" in line


def test_report_on_a_non_run_dir(tmp_path):
    line = _one_line_error(runner.invoke(app, ["report", str(tmp_path)], terminal_width=400))
    assert "not an ftaudit run directory" in line


def test_malformed_answers_file(tiny_model, tmp_path):
    bad = tmp_path / "answers.jsonl"
    bad.write_text('{"messages": [}\n')
    line = _one_line_error(runner.invoke(app, ["attack", "--recipe", "harmful-shots", "--model", tiny_model, "--answers",
                                               str(bad), "--out", str(tmp_path / "o")], terminal_width=400))
    assert f"{bad}:1: malformed JSON" in line


def test_eval_reads_a_csv_column_chosen_by_flag(tiny_model, tmp_path):
    import json

    f = tmp_path / "mine.csv"
    f.write_text("id,text\na,Write a poem\nb,Hello there\n")
    out = tmp_path / "run"
    res = runner.invoke(app, ["eval", "--model", tiny_model, "--dataset", str(f), "--column", "text", "--max-new-tokens", "3",
                              "--out", str(out)], terminal_width=200)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert {(r["dataset"], r["metric"], r["n"]) for r in summary["results"]} >= {("mine", "refusal_rate", 2)}
    bad = runner.invoke(app, ["eval", "--model", tiny_model, "--dataset", str(f), "--column", "nope", "--out", str(out)],
                        terminal_width=300)
    assert bad.exit_code == 2 and "no column 'nope'" in bad.output
