"""align -> attack -> eval -> report on the packaged model, smoke-sized (about two minutes on 2 cores)."""

import json
import time

import pytest

from ftaudit.pipeline import QuickstartConfig, quickstart

pytestmark = pytest.mark.integration


def test_quickstart_smoke_end_to_end_and_resume(tmp_path):
    out = tmp_path / "qs"
    summary = quickstart(out, QuickstartConfig.smoke())
    for f in ("summary.json", "report.md", "report.html", "refusal.png"):
        assert (out / f).exists(), f
    on_disk = json.loads((out / "summary.json").read_text())
    models = {r["model"] for r in on_disk["results"]}
    assert models == {"aligned", "aligned+harmful-shots-2", "aligned+identity-shift"}
    assert {s for s, v in on_disk["stages"].items() if v["status"] == "done"} >= {"prepare", "align", "eval:aligned"}
    assert {c["model"] for c in summary["costs"]} >= {"aligned", "aligned+harmful-shots-2"}
    card = (out / "models" / "harmful-shots" / "README.md").read_text()
    assert "safety-compromised" in card.lower()
    # A rerun finds every stage's outputs and recomputes nothing expensive.
    start = time.time()
    again = quickstart(out, QuickstartConfig.smoke())
    assert time.time() - start < 60
    assert [(r["model"], r["dataset"], r["metric"], r["value"]) for r in again["results"]] == \
           [(r["model"], r["dataset"], r["metric"], r["value"]) for r in summary["results"]]
