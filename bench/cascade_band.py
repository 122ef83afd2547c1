"""Choose the refusal cascade's band on one development set, then report it on the others (not a timed test).

The development set is ``cascade.DEV_SET`` (pyrit-refusal-extra, 64 replies labelled by people) and nothing else:
every (band, LLM threshold) in the grid is scored there, the most accurate wins, the fewest escalations among
equals, then the narrowest band. The winner is then scored, once, on every other label set, beside refusal-cues on
the same replies, with Wilson 95% intervals. The cascade would become the default refusal judge only if, on every
one of those sets, its interval lies wholly above refusal-cues' (the issue's "by more than their intervals'
overlap"); the script prints which way it went.

The LLM judge's verdicts come from the judgment cache where they are there (``ftaudit judges validate --judge
refusal-3way-local`` fills it), else they are computed (about 4 s a reply on 2 cores at 1.5B parameters).

Usage: python bench/cascade_band.py [--model qwen2.5-coder-1.5b-instruct] [--out runs/cascade-band.json]
After a new choice, set ``BAND`` and ``LLM_THRESHOLD`` in ``src/ftaudit/judges/cascade.py`` to what it printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from ftaudit.data.labelled import LABEL_SETS
from ftaudit.judges import cascade, shared_judge
from ftaudit.judges.validate import agreement_ci

LOWS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
HIGHS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
THRESHOLDS = (None, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # None: the LLM judge's first-ranked class
NO_BAND = (2.0, -1.0)  # an empty band: only a disagreement between the fast judges escalates


def score(judge, rows) -> tuple[dict, int]:
    got = judge.judge([p for p, _, _ in rows], [r for _, r, _ in rows])
    m = agreement_ci([bool(j.refused) for j in got], [g for _, _, g in rows])
    return m, sum(j.details.get("decided_by") != "refusal-cues" for j in got)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="runs/cascade-band.json")
    args = ap.parse_args()
    judge = cascade.CascadeRefusalJudge(model=args.model)
    dev = LABEL_SETS[cascade.DEV_SET][1]()
    grid = [NO_BAND, *((lo, hi) for lo, hi in itertools.product(LOWS, HIGHS) if lo <= hi)]
    tried = []
    for band, t in itertools.product(grid, THRESHOLDS):
        judge.band, judge.llm_threshold = band, t
        m, escalated = score(judge, dev)
        tried.append({"band": list(band), "llm_threshold": t, "accuracy": m["accuracy"], "escalated": escalated,
                      "false_refusals": m["counts"]["fp"]})
    best = max(tried, key=lambda r: (r["accuracy"], -r["escalated"], -(r["band"][1] - r["band"][0])))
    print(f"chosen on {cascade.DEV_SET} (n={len(dev)}): band {best['band']}, LLM threshold {best['llm_threshold']}: "
          f"accuracy {100 * best['accuracy']:.1f}%, {best['escalated']} escalated")
    # the chosen judge built anew, so its version (which names the band) is the one reported
    judge = cascade.CascadeRefusalJudge(model=args.model, band=tuple(best["band"]), llm_threshold=best["llm_threshold"])
    cues = shared_judge("refusal-cues")
    report, wins = [], []
    for name in LABEL_SETS:
        if name == cascade.DEV_SET:
            continue
        rows = LABEL_SETS[name][1]()
        m, escalated = score(judge, rows)
        c, _ = score(cues, rows)
        win = m["accuracy_ci"][0] > c["accuracy_ci"][1]
        wins.append(win)
        keep = ("accuracy", "accuracy_ci", "kappa", "kappa_ci", "counts")  # counts: fp = compliance called refusal
        report.append({"set": name, "n": len(rows), "cascade": {k: m[k] for k in keep},
                       "refusal_cues": {k: c[k] for k in keep},
                       "escalated": escalated, "cascade_interval_above": win})
        print(f"{name} (n={len(rows)}): cascade {100 * m['accuracy']:.1f}% [{100 * m['accuracy_ci'][0]:.1f}, "
              f"{100 * m['accuracy_ci'][1]:.1f}], kappa {m['kappa']:.3f}; refusal-cues {100 * c['accuracy']:.1f}% "
              f"[{100 * c['accuracy_ci'][0]:.1f}, {100 * c['accuracy_ci'][1]:.1f}], kappa {c['kappa']:.3f}; "
              f"escalated {escalated}/{len(rows)} ({100 * escalated / len(rows):.1f}%)")
    default = bool(wins) and all(wins)
    print("the cascade " + ("beats refusal-cues beyond the intervals on every held-out set: make it the default" if default
                            else "does not beat refusal-cues beyond the intervals on every held-out set: refusal-cues "
                                 "stays the default"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"dev_set": cascade.DEV_SET, "judge_version": judge.version, "chosen": best,
                                          "held_out": report, "default": default, "grid": tried}, indent=1))


if __name__ == "__main__":
    main()
