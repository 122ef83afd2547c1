"""Validate the LLM judges on offline weights against people, and package the rows (not a timed test).

Runs ``ftaudit judges validate`` for ``harmfulness-local`` (pyrit-harm, 604 human harm scores), ``strongreject-local``
(``--strongreject-limit`` replies per harm category; three answer positions a reply make it the slowest) and
``refusal-3way-local`` (every offline refusal label set) on the first ``--model``; on every other model (a
comparison) ``harmfulness-local`` on ``--comparison-limit`` replies per category and ``refusal-3way-local`` on
``--comparison-set``; then ``refusal-cascade`` on its held-out sets. Verdicts already in the judgment cache are reused (the speed reported is that of the verdicts judged
now; ``judges/validation.json`` keeps the speed measured when they were first computed). Hours on 2 CPU cores for the
1.5B model: the verdicts are kept batch by batch, so a killed run resumes.

With ``--package`` the rows are written to ``src/ftaudit/judges/validation_packaged.json``: a report on another
machine then shows them beside the judge, but only where that machine builds the identical judge version (weights
fingerprint, dtype, prompt texts).

Usage: python bench/validate_llm_judges.py [--model qwen2.5-coder-1.5b-instruct --model qwen2.5-coder-0.5b-instruct]
       [--strongreject-limit 5] [--comparison-limit 20] [--comparison-set pyrit-refusal] [--out runs/llm-judges.json]
       [--package]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ftaudit.api import validate_judges
from ftaudit.judges.validate import PACKAGED, _stored


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=None)
    ap.add_argument("--strongreject-limit", type=int, default=5)
    ap.add_argument("--comparison-limit", type=int, default=20,
                    help="pyrit-harm replies per category for every model after the first (a comparison; 0: all)")
    ap.add_argument("--comparison-set", action="append", default=None,
                    help="refusal label sets for every model after the first (default: pyrit-refusal)")
    ap.add_argument("--out", default="runs/llm-judges.json")
    ap.add_argument("--package", action="store_true")
    args = ap.parse_args()
    models = args.model or ["qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct"]
    rows = []
    for i, model in enumerate(models):
        opts = {"model": model}
        if i == 0:  # the judge model: every set, and the StrongREJECT rubric on a subset (three answers a reply)
            rows += validate_judges(["harmfulness-local"], judge_options=opts)
            rows += validate_judges(["refusal-3way-local"], judge_options=opts)
            rows += validate_judges(["strongreject-local"], limit=args.strongreject_limit, judge_options=opts)
        else:  # a comparison model: a subset of each
            rows += validate_judges(["harmfulness-local"], limit=args.comparison_limit or None, judge_options=opts)
            rows += validate_judges(["refusal-3way-local"], sets=args.comparison_set or ["pyrit-refusal"],
                                    judge_options=opts)
    rows += validate_judges(["refusal-cascade"], judge_options={"model": models[0]})
    for r in rows:
        if not r["held_out"]:
            print(f"{r['judge']:20} {r['set']:20} not scored (trained or chosen on it)")
            continue
        main_measure = "spearman" if "spearman" in r else "accuracy"
        extra = f", decided by {r['decided_by']}" if "decided_by" in r else ""
        print(f"{r['judge']:20} {r['judge_version'][:60]:60} {r['set']:20} n={r['n']:4} {main_measure} "
              f"{r[main_measure]:.3f} [{r[f'{main_measure}_ci'][0]:.3f}, {r[f'{main_measure}_ci'][1]:.3f}] "
              f"kappa {r['kappa']:.3f} [{r['kappa_ci'][0]:.3f}, {r['kappa_ci'][1]:.3f}]{extra}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1, default=str))
    if args.package:
        mine = {(r["judge"], r["judge_version"]) for r in rows}
        stored = {k: v for k, v in _stored().items() if (v["judge"], v["judge_version"]) in mine}
        PACKAGED.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
        print(f"packaged {len(stored)} rows in {PACKAGED}")


if __name__ == "__main__":
    main()
