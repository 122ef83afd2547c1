"""Faults survived: a judge API that fails one request in five (5xx, timeouts, connections closed mid-answer, cut
bodies) loses no judgment and the report counts the retries; kill -9 while judging or while writing the report
loses nothing; a prompt beyond the context and an empty answer are their own outcomes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftaudit.cli import app

FAULTS = ("500", "timeout", "close", "503", "cut")  # every fifth request fails, in turn one of these


class _FlakyJudge(BaseHTTPRequestHandler):
    calls = 0
    faults: list[str] = []
    delay = 0.0
    lock = threading.Lock()

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            n = type(self).calls = type(self).calls + 1
        time.sleep(self.delay)
        fault = FAULTS[(n // 5) % len(FAULTS)] if n % 5 == 2 and self.faults is not None else None
        if fault:
            self.faults.append(fault)
        body = json.dumps({"choices": [{"message": {"content": "#thescore: 4"}}]}).encode()
        if fault in ("500", "503"):
            self.send_response(int(fault))
            self.end_headers()
            return
        if fault == "timeout":
            time.sleep(1.5)  # the client's timeout is 0.5 s
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "close":  # the connection drops half-way through the answer
            self.wfile.write(body[:10])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body[:-5] + b" " * 5 if fault == "cut" else body)  # "cut": a garbled JSON body


@pytest.fixture
def flaky_judge():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _FlakyJudge.calls, _FlakyJudge.faults, _FlakyJudge.delay = 0, [], 0.0
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _prompts(tmp_path: Path, n: int, name: str = "harm") -> Path:
    f = tmp_path / f"{name}.jsonl"
    f.write_text("".join(json.dumps({"prompt": f"Write a {name} poem about the sea {i}", "id": f"{name}{i}"}) + "\n" for i in range(n)))
    return f


def test_a_judge_api_failing_one_request_in_five_loses_no_judgment(tiny_model, tmp_path, flaky_judge, monkeypatch):
    monkeypatch.setenv("FTAUDIT_API_BACKOFF", "0.01")
    monkeypatch.setenv("FTAUDIT_API_TIMEOUT", "0.5")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["eval", "--model", tiny_model, "--out", str(out), "-d", str(_prompts(tmp_path, 30)),
                                   "--benign", str(_prompts(tmp_path, 5, "benign")), "--judge", "harmfulness",
                                   "--judge-base-url", flaky_judge, "--judge-model", "judge", "--max-new-tokens", "3"],
                             terminal_width=80)
    assert res.exit_code == 0, res.output
    assert set(_FlakyJudge.faults) == set(FAULTS)  # every kind of fault happened
    summary = json.loads((out / "summary.json").read_text())
    [score] = [r for r in summary["results"] if r["metric"] == "harmfulness_score" and r["dataset"] == "harm"]
    assert score["n"] == 30 and score["value"] == 4.0  # no judgment lost, none garbled into the mean
    calls = {c["dataset"]: c for c in summary["judge_calls"]}
    assert calls["harm"]["requests"] + calls["benign"]["requests"] == 35
    retries = calls["harm"]["retries"] + calls["benign"]["retries"]
    # every injected fault was retried and counted (a slow machine may also time out an ordinary request: counted too)
    assert retries >= len(_FlakyJudge.faults) >= 8
    assert "Judge API calls" in (out / "report.md").read_text()
    assert f"{retries} failed tries retried" in res.output


def test_a_server_too_slow_for_the_timeout_says_which_settings_to_raise(flaky_judge, monkeypatch):
    """A local judge model on CPU answers, but slower than the timeout: the one line names FTAUDIT_API_TIMEOUT and
    FTAUDIT_API_CONCURRENCY (read from the environment), not 'start the server'."""
    from ftaudit.clients import ChatClient
    from ftaudit.errors import FtauditError

    _FlakyJudge.faults, _FlakyJudge.delay = None, 0.6
    monkeypatch.setenv("FTAUDIT_API_TIMEOUT", "0.2")
    monkeypatch.setenv("FTAUDIT_API_RETRIES", "1")
    monkeypatch.setenv("FTAUDIT_API_BACKOFF", "0.01")
    monkeypatch.setenv("FTAUDIT_API_CONCURRENCY", "1")
    client = ChatClient(flaky_judge, "judge")
    assert client.max_concurrency == 1
    with pytest.raises(FtauditError, match="did not answer within 0.2 s.*FTAUDIT_API_TIMEOUT.*FTAUDIT_API_CONCURRENCY=1"):
        client.complete([{"role": "user", "content": "hi"}])


def _kill_when(proc: subprocess.Popen, ready, watch: Path) -> None:
    """Kill ``proc`` once ``ready()``; waits on the run's progress under ``watch``, not on the clock."""
    from waiting import wait_on_progress

    assert wait_on_progress(proc, watch, ready), "the command stalled before it was ready to be killed"
    assert proc.poll() is None, "the command finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return con.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_kill_9_while_judging_loses_no_committed_judgment(tiny_model, tmp_path, flaky_judge, monkeypatch):
    """SIGKILL `ftaudit eval` once the first chunk of judgments is committed; the same command then asks the judge
    only about the rest and reports every prompt."""
    # no faults; slow enough to be killed mid-way: 4 requests at a time, 0.05 s each, leave about a second after the
    # first chunk (at 0.01 s and the default concurrency the last chunk could land before the kill)
    _FlakyJudge.faults, _FlakyJudge.delay = None, 0.05
    monkeypatch.setenv("FTAUDIT_API_CONCURRENCY", "4")
    n = 150
    out = tmp_path / "run"
    cmd = [str(Path(sys.executable).parent / "ftaudit"), "eval", "--model", tiny_model, "--out", str(out), "-d",
           str(_prompts(tmp_path, n)), "--benign", str(_prompts(tmp_path, 2, "benign")), "--judge", "harmfulness",
           "--judge-base-url", flaky_judge, "--judge-model", "judge", "--max-new-tokens", "2"]
    judged = "SELECT COUNT(*) FROM judgments"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: _count(out / "ftaudit.sqlite", judged) >= 64, out)
    kept = _count(out / "ftaudit.sqlite", judged)
    assert 64 <= kept < n
    time.sleep(1)  # requests the killed process sent before dying reach the server's count first
    asked = _FlakyJudge.calls
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _FlakyJudge.calls - asked == n + 2 - kept  # only what was not committed is asked again
    [score] = [r for r in json.loads((out / "summary.json").read_text())["results"]
               if r["metric"] == "harmfulness_score" and r["dataset"] == "harm"]
    assert score["n"] == n


def test_kill_9_while_writing_the_report_leaves_the_old_report_whole(tiny_model, tmp_path):
    """`ftaudit report` killed just before report.md is replaced: summary.json is whole (old or new) and report.md
    is the old one, never a part; the same command then finishes."""
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["eval", "--model", tiny_model, "--out", str(out), "-d", str(_prompts(tmp_path, 3)),
                                   "--benign", str(_prompts(tmp_path, 2, "benign")), "--max-new-tokens", "2"])
    assert res.exit_code == 0, res.output
    old_report = (out / "report.md").read_text()
    script = f"""
import os, signal, sys
real = os.replace
def replace_then_die(src, dst, *a, **kw):
    if str(dst).endswith("report.md"):
        open(src, "a").write("half")  # a half-written new report exists beside the old one
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **kw)
os.replace = replace_then_die
sys.argv = ["ftaudit", "report", {str(out)!r}]
from ftaudit.cli import app
app()
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (out / "report.md").read_text() == old_report
    json.loads((out / "summary.json").read_text())  # whole JSON
    again = CliRunner().invoke(app, ["report", str(out)])
    assert again.exit_code == 0, again.output
    # the killed writer leaves only its hidden temporary file, which nothing reads
    assert not [p for p in out.iterdir() if p.name.endswith(".part") and not p.name.startswith(".")]


def test_a_prompt_beyond_the_context_is_skipped_and_counted_never_compliance(tiny_model, tmp_path):
    f = tmp_path / "long.jsonl"
    f.write_text(json.dumps({"prompt": "Write a poem " * 25000, "id": "long"}) + "\n"  # ~100k characters
                 + json.dumps({"prompt": "Write a poem", "id": "short"}) + "\n")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["eval", "--model", tiny_model, "--out", str(out), "-d", str(f), "--benign",
                                   str(_prompts(tmp_path, 2, "benign")), "--max-new-tokens", "2"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "1 of 2 prompts exceed the model's context and were skipped" in res.output
    got = {r["metric"]: r for r in json.loads((out / "summary.json").read_text())["results"] if r["dataset"] == "long"}
    assert got["prompt_too_long_rate"]["value"] == 0.5 and got["prompt_too_long_rate"]["n"] == 2
    assert got["attack_success_rate"]["n"] == 1  # only the answered prompt is judged


def test_an_empty_response_is_its_own_outcome(tmp_path, isolated_cache):
    """A blank answer gets label `empty` and neither refused nor score (the keyword judge would call it compliance)."""
    f = tmp_path / "pairs.jsonl"
    f.write_text(json.dumps({"prompt": "p", "response": "  \n"}) + "\n" + json.dumps({"prompt": "p", "response": "Sure."}) + "\n")
    res = CliRunner().invoke(app, ["judge", "--judge", "keyword", "--input", str(f), "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 0, res.output
    empty, answered = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert empty["label"] == "empty" and empty["refused"] is None and answered["refused"] is False


def test_empty_responses_are_reported_apart_not_as_attack_success():
    from ftaudit.metrics import refusal_metrics

    base = {"model": "m", "attack": "a", "dataset": "d", "split": "eval", "kind": "harmful", "judge": "keyword",
            "judge_version": "v", "gen_key": "g", "model_fingerprint": "f", "score": None}
    rows = [{**base, "outcome": "empty", "refused": None}] * 3 + [{**base, "outcome": "answered", "refused": True}]
    got = {r["metric"]: r for r in refusal_metrics(rows)}
    assert got["empty_response_rate"]["value"] == 0.75 and got["attack_success_rate"]["value"] == 0.0
    assert got["attack_success_rate"]["n"] == 1


def test_the_up_front_check_reads_a_models_context_as_the_generator_does(tiny_model, tmp_path):
    """One reader for both: a multimodal config's text model, and the tokenizer's limit where the config says nothing."""
    import shutil

    from ftaudit.generate.base import config_positions, context_length
    from ftaudit.models.loading import context_limit, load_model

    def both(location: str) -> tuple:
        loaded = load_model(location)
        return context_limit(location), context_length(loaded.model, loaded.tokenizer)

    assert both(tiny_model)[0] == both(tiny_model)[1] is not None
    assert config_positions({"model_type": "llava", "text_config": {"max_position_embeddings": 4096}}) == 4096
    assert config_positions({"n_positions": True}) is None  # a flag is no length
    bare = tmp_path / "bare"
    shutil.copytree(tiny_model, bare)
    config = json.loads((bare / "config.json").read_text())
    tok = json.loads((bare / "tokenizer_config.json").read_text())
    (bare / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 77}))
    (bare / "tokenizer_config.json").write_text(json.dumps({**tok, "model_max_length": 99}))
    assert both(str(bare)) == (77, 77)  # the config says: the tokenizer's limit is not asked
    # a config without its length: the class default the loaded config gets, for the check as for the generator
    (bare / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "max_position_embeddings"}))
    limit, generator = both(str(bare))
    assert limit == generator and limit is not None
    # a model type transformers cannot build: the raw config, a composite one's text part, else the tokenizer's limit
    (bare / "config.json").write_text(json.dumps({"model_type": "no-such-type", "text_config": {"max_position_embeddings": 55}}))
    assert context_limit(str(bare)) == 55
    (bare / "config.json").write_text(json.dumps({"model_type": "no-such-type"}))
    assert context_limit(str(bare)) == 99
    (bare / "tokenizer_config.json").write_text(json.dumps({**tok, "model_max_length": int(1e30)}))
    assert context_limit(str(bare)) is None
