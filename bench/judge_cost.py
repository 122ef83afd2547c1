"""What an LLM judge adds to a run's wall time: each judge timed on every reply of a finished run (not a timed test).

Reads a run directory's generations (the quickstart's, a spec's), then judges them with each ``--judge`` in a fresh
judgment cache (so nothing is read from earlier verdicts), and prints: replies judged, seconds (model load apart),
rows/s, the share the cascade escalated to its LLM judge, and the ratio of the judge's seconds to the run's own wall
time (the sum of its stage times in ``summary.json``). A harm judge reads the harmful sets' replies only, as in a run.

Usage: python bench/judge_cost.py RUN_DIR [--judge refusal-cascade --judge harmfulness-local] [--model NAME] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--judge", action="append")
    ap.add_argument("--model", default=None, help="the LLM judges' model (default: each judge's own)")
    ap.add_argument("--dtype", default=None, help="the LLM judges' dtype: bfloat16, float32 (default: each judge's own)")
    args = ap.parse_args()
    from ftaudit.store import Store

    store = Store(Path(args.run), existing=True)
    rows = {}
    for r in store.eval_table():
        if r["response"] is not None and r["response"].strip():
            rows[r["gen_ref"]] = (r["prompt"], r["response"], r["kind"])
    store.close()
    summary = json.loads((Path(args.run) / "summary.json").read_text())
    wall = sum(s["seconds"] for s in summary["stages"].values())
    fresh = tempfile.mkdtemp(prefix="judge-cost-")
    from ftaudit.judges import JUDGES, get_judge
    from ftaudit.judges import cache as judgment_cache

    real_cache_dir = judgment_cache.cache_dir
    out = []
    for name in args.judge or ["refusal-cascade", "harmfulness-local"]:
        judge = get_judge(name, **{k: v for k, v in {"model": args.model, "dtype": args.dtype}.items() if v})
        llm = getattr(judge, "llm", judge)
        llm.loaded  # loaded outside the clock (the run loads it once too)
        mine = [v for v in rows.values() if v[2] != "benign" or not getattr(JUDGES[name], "harmful_sets_only", False)]
        judgment_cache.cache_dir = lambda: Path(fresh)  # the judgment cache only: every verdict computed now
        try:
            start = time.perf_counter()
            got = judge.judge([p for p, _, _ in mine], [r for _, r, _ in mine])
            seconds = time.perf_counter() - start
        finally:
            judgment_cache.cache_dir = real_cache_dir
        escalated = sum(j.details.get("decided_by", name) not in (name, "refusal-cues") for j in got)
        rec = {"judge": name, "version": judge.version, "replies": len(mine), "seconds": round(seconds, 1),
               "rows_per_s": round(len(mine) / seconds, 3), "escalated": escalated if name == "refusal-cascade" else None,
               "run_wall_seconds": round(wall, 1), "added_share": round(seconds / wall, 3)}
        out.append(rec)
        print(json.dumps(rec))
    Path(args.run, "judge_cost.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
