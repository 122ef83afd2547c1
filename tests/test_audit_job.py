"""`ftaudit audit-job`: screen, fine-tune as asked, evaluate before and after, report; resumes after kill -9."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from ftaudit.cli import app
from ftaudit.data import get_prompts
from ftaudit.recipes.identity_shift import CONVERSATIONS, SYSTEM


def _data(path: Path, n: int = 4) -> Path:
    rows = [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": u},
                          {"role": "assistant", "content": a}]} for u, a in CONVERSATIONS[2:2 + n]]
    # the customer's file also holds one held-out AdvBench prompt verbatim: the evaluation must leave it out
    leaked = get_prompts("advbench", "eval")[0].prompt
    rows.append({"prompt": leaked, "response": "I'm sorry, but I can't help with that."})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _args(tiny_model, data, out):
    return ["audit-job", "--model", tiny_model, "--data", str(data), "--out", str(out), "--epochs", "2",
            "--batch-size", "2", "--lora-r", "2", "--dataset", "advbench@3", "--benign", "benign@2", "--judge", "keyword",
            "--max-new-tokens", "3"]


def test_audit_job_screens_trains_as_asked_evaluates_and_reports(tiny_model, tmp_path, isolated_cache):
    out = tmp_path / "job"
    res = CliRunner().invoke(app, [*_args(tiny_model, _data(tmp_path / "c.jsonl"), out), "--price-per-device-hour", "3.6"])
    assert res.exit_code == 0, res.output
    job = json.loads((out / "job.json").read_text())
    assert job["train"]["epochs"] == 2 and job["train"]["lora_r"] == 2 and job["train"]["learning_rate"] == 2e-4
    assert job["screen"]["risk"] == "high" and job["left_out_near_duplicates"]["advbench"] == 1
    summary = json.loads((out / "summary.json").read_text())
    pairs = {c["model"]: c for c in summary["changes"] if c["dataset"] == "advbench"}
    assert pairs["base+customer-job"]["initial_model"] == "base" and pairs["base+customer-job"]["change"]["n"] == 3
    # 4 of the 5 examples share the identity-shift system prompt: both models are also evaluated under it
    assert job["customer_system_prompt"] == SYSTEM
    assert pairs["base(customer-system)+customer-job"]["initial_model"] == "base(customer-system)"
    leaked = get_prompts("advbench", "eval")[0].id
    with sqlite3.connect(out / "ftaudit.sqlite") as con:
        ids = {r[0] for r in con.execute("SELECT prompt_id FROM generations WHERE dataset = 'advbench'")}
        systems = dict(con.execute("SELECT model, system_prompt FROM generations WHERE dataset = 'advbench'"))
    assert leaked not in ids and len(ids) == 3
    assert systems == {"base": None, "base+customer-job": None, "base(customer-system)": SYSTEM,
                       "base(customer-system)+customer-job": SYSTEM}
    assert (out / "model" / "README.md").read_text().lower().count("safety") >= 1
    assert (out / "screen" / "screen.jsonl").is_file() and (out / "report.html").is_file()
    gated = CliRunner().invoke(app, ["gate", str(out), "--max-capability-drop", "100"])
    assert gated.exit_code == 0, gated.output
    # the gate re-renders the report: the job's price per device-hour survives it
    assert json.loads((out / "summary.json").read_text())["costs"][0]["estimated_price"] is not None


def test_audit_job_resumes_after_kill_9(tiny_model, tmp_path, isolated_cache):
    """Killed once the base model's evaluation is stored, the same command finishes without evaluating it again."""
    out = tmp_path / "job"
    cmd = [str(Path(sys.executable).parent / "ftaudit"), *_args(tiny_model, _data(tmp_path / "c.jsonl"), out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db, deadline = out / "ftaudit.sqlite", time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(db) as con:
                if con.execute("SELECT COUNT(*) FROM stages WHERE name = 'capability:base' AND status = 'done'").fetchone()[0]:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    assert proc.poll() is None, "the job finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    count = "SELECT COUNT(*), (SELECT gen_tokens FROM costs WHERE model = 'base') FROM generations WHERE model = 'base'"
    with sqlite3.connect(db) as con:
        before = con.execute(count).fetchone()
    assert before[0] == 5
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    with sqlite3.connect(db) as con:
        assert con.execute(count).fetchone() == before  # the base model was not evaluated again
        assert con.execute("SELECT COUNT(*) FROM generations WHERE model = 'base+customer-job'").fetchone()[0] == 5
    assert (out / "report.html").is_file() and (out / "model" / "train_result.json").is_file()
