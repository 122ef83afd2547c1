"""Speed of the offline refusal judges on this machine: replies judged per second, and each judge's ratio to
refusal-cues (not a timed test). Replies are the offline label sets' own (pyrit refusal.csv, uncensorbench), repeated
to --n.

Usage: python bench/judge_speed.py [--n 2000] [--judge keyword --judge refusal-cues --judge embedding-refusal]
"""

from __future__ import annotations

import argparse
import itertools
import time

from ftaudit.data.labelled import LABEL_SETS
from ftaudit.judges import shared_judge


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--judge", action="append")
    args = ap.parse_args()
    rows = [r for name in ("pyrit-refusal", "uncensorbench") for r in LABEL_SETS[name][1]()]
    rows = list(itertools.islice(itertools.cycle(rows), args.n))
    prompts, replies = [p for p, _, _ in rows], [r for _, r, _ in rows]
    rates = {}
    for name in args.judge or ["keyword", "refusal-cues", "embedding-refusal"]:
        judge = shared_judge(name)
        judge.judge(prompts[:8], replies[:8])  # load and warm up outside the clock
        n = len(rows) if name != "embedding-refusal" else min(len(rows), 200)
        start = time.perf_counter()
        judge.judge(prompts[:n], replies[:n])
        rates[name] = n / (time.perf_counter() - start)
    base = rates.get("refusal-cues")
    for name, rate in rates.items():
        ratio = f"  ({rate / base:.2f}x refusal-cues)" if base else ""
        print(f"{name:18s} {rate:10.0f} replies/s{ratio}")


if __name__ == "__main__":
    main()
