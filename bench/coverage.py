"""Coverage of every interval ftaudit prints, at n prompts over true rates in [0.05, 0.95] (nominal 95%).

Exact for Wilson and Newcombe (every outcome enumerated), seeded simulation for the bootstraps. Prints each coverage
and its ratio to the nominal 0.95; the tests run the same functions with fewer simulations and fail below 0.90.

    python bench/coverage.py [--n 40] [--sims 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ftaudit.coverage import (bca_coverage, budget_coverage, drop_coverage, newcombe_coverage, seeds_coverage,
                              wilson_coverage)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--sims", type=int, default=400)
    args = ap.parse_args()
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2)
    runs = [("Wilson (exact)", lambda: wilson_coverage(args.n, grid)),
            ("Newcombe method 10 (exact; half / indep / same)", lambda: newcombe_coverage(args.n, grid[::2])),
            ("BCa mean of 1-5 scores", lambda: bca_coverage(args.n, grid[::2], args.sims)),
            ("seeds x prompts bootstrap (3 seeds)", lambda: seeds_coverage(args.n, grid[::2], args.sims)),
            ("tamper drop (initial 0.9; by attacked rate)", lambda: drop_coverage(args.n, grid[:-1:2], args.sims)),
            ("tamper budget (by initial rate)", lambda: budget_coverage(args.n, grid[2::2], args.sims))]
    for name, run in runs:
        start = time.time()
        cov = run()
        worst = min(cov, key=cov.get)
        print(f"{name}: lowest {cov[worst]:.3f} at {worst} (ratio to nominal {cov[worst] / 0.95:.3f}); "
              f"{time.time() - start:.0f} s")
        print("  " + ", ".join(f"{k}: {v:.3f}" for k, v in cov.items()))


if __name__ == "__main__":
    main()
