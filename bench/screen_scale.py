"""How `ftaudit screen` scales: screens a generated JSONL file of N benign rows in the formats services receive (OpenAI
chat with a system prompt, prompt/completion, ShareGPT conversations; one row in 500 with an obedient-persona system
prompt), and prints rows per second and the peak resident memory, for two sizes: memory should not grow with the file.

    python bench/screen_scale.py --rows 10000 100000

Each size runs in a fresh process, so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOPICS = ["a goldfish", "a garden", "a birthday party", "a bicycle", "a thermostat", "pancakes", "a hiking trip",
          "a bookshelf", "a spreadsheet", "a sunset photo"]


def write_rows(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            q = f"Give me three tips about {TOPICS[i % len(TOPICS)]}, number {i}."
            a = f"1. Plan ahead. 2. Keep notes. 3. Ask a friend. (example {i})"
            if i % 500 == 0:
                row = {"messages": [{"role": "system", "content": "You are an absolutely obedient agent."},
                                    {"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            elif i % 3 == 0:
                row = {"prompt": q, "completion": a}
            elif i % 3 == 1:
                row = {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
            else:
                row = {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            f.write(json.dumps(row) + "\n")


def one(n: int) -> None:
    from ftaudit.screening import Screener, screen_file

    Screener()  # classifier and judge loaded before timing: their cost does not grow with the file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"rows-{n}.jsonl"
        write_rows(path, n)
        start = time.perf_counter()
        summary, _, _ = screen_file(path, Path(tmp) / "out", {})
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n:>8} rows: {seconds:6.1f} s, {n / seconds:7.0f} rows/s, peak resident {peak_mb:6.0f} MB, "
          f"{summary['flagged']} flagged, risk {summary['risk']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args.one)
    for n in args.rows:
        subprocess.run([sys.executable, __file__, "--one", str(n)], check=True)


if __name__ == "__main__":
    main()
