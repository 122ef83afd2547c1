"""How the harm classifier's fit was chosen: scaling and regularization in cross-validation on its training pairs.

Reproduces the v5 and v6 selection tables of docs/services.md. The training pairs of :func:`ftaudit.harm_classifier.
training_pairs` (the reference model's answers come from the user's cache, generated at run time), MiniLM pair
features, logistic regression with balanced classes, on raw or standardized features over a grid of C, scored in the
classifier's own 5 prompt-grouped folds (near-constant features dropped first, as the classifier does), flag rate at
0.5 per kind of training pair. No held-out set is read. The rule, written after seeing this grid: the fewest benign
pairs flagged (ftaudit's benign train instructions and the ``benign-lookalike`` train half, pooled) among settings
that detect at least 94% of the harmful answered pairs; it is marked ``<- chosen``.

``--v6`` adds the train half of ``benign-lookalike-2`` to the safe exchanges: v6, tried and not adopted (the same rule,
fixed before its grid ran, picked standardized C = 0.001, which flags 25.9% of the benign pairs).

``--reference-mmlu N`` adds N more MMLU questions (the next N by id hash after the classifier's own sample) answered
by the reference model in free text, as safe pairs (``--replace-mmlu``: in place of the MMLU pairs answered with
their correct choice): the variants that were tried and not adopted (generating them took about 12 minutes on 2
cores, and neither beat the chosen fit by the rule).

    python bench/harm_regularization.py [--v6] [--reference-mmlu 1500 [--replace-mmlu]]
"""

from __future__ import annotations

import argparse
import hashlib
import warnings

import numpy as np

MIN_HARMFUL = 0.94
GRID = {"raw": (0.1, 1.0, 10.0, 100.0, 1000.0), "standardized": (0.001, 0.01, 0.1, 1.0)}


def main() -> None:
    import json
    import time
    from datetime import date

    import sklearn
    from sklearn.exceptions import ConvergenceWarning

    from ftaudit.capability.mmlu import load_mmlu
    from ftaudit.data import PromptRecord, get_prompts
    from ftaudit.harm_classifier import (DEFAULT_REFERENCE, HARMFUL_SOURCES, MMLU_SAMPLE, cv_flags, data_digest,
                                         features, make_model, norm, reference_answers, settings, training_pairs)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-mmlu", type=int, default=0, help="MMLU questions answered by the reference model, "
                    "added as safe pairs (the variant not adopted)")
    ap.add_argument("--replace-mmlu", action="store_true", help="with --reference-mmlu: drop the MMLU pairs answered "
                    "with their correct choice")
    ap.add_argument("--v6", action="store_true", help="add benign-lookalike-2's train half to the safe exchanges (the "
                    "v6 that was not adopted)")
    args = ap.parse_args()
    start = time.perf_counter()
    if args.v6:
        import ftaudit.harm_classifier as hc

        hc.BENIGN_TRAIN = (*hc.BENIGN_TRAIN, "benign-lookalike-2")  # training_pairs reads it at call time
    data = training_pairs(HARMFUL_SOURCES, DEFAULT_REFERENCE)
    lookalike = {name: {norm(p.prompt) for p in get_prompts(name, "train")}
                 for name in ("benign-lookalike", "benign-lookalike-2")}
    kind = [next((f"{name} answered" for name, seen in lookalike.items() if norm(p) in seen), g)
            if g == "benign answered" else g for p, g in zip(data.prompts, data.groups)]
    prompts, answers, y = list(data.prompts), list(data.answers), list(data.labels)
    if args.reference_mmlu and args.replace_mmlu:
        keep = [i for i, k in enumerate(kind) if k != "mmlu answered"]
        prompts, answers, y, kind = ([v[i] for i in keep] for v in (prompts, answers, y, kind))
    if args.reference_mmlu:
        items = sorted(load_mmlu(), key=lambda it: hashlib.sha256(it.id.encode()).hexdigest())
        recs = [PromptRecord(it.question, it.id, it.subject)
                for it in items[MMLU_SAMPLE:MMLU_SAMPLE + args.reference_mmlu]]
        prompts += [r.prompt for r in recs]
        answers += reference_answers(DEFAULT_REFERENCE, recs, "harm-classifier-train-mmlu")
        y += [0] * len(recs)
        kind += ["mmlu answered by the reference"] * len(recs)
    x, y, kind = features(prompts, answers), np.array(y), np.array(kind)
    groups = [norm(p) for p in prompts]
    benign = np.isin(kind, ["benign answered"] + [f"{name} answered" for name in lookalike])
    rows = []
    for scaling, cs in GRID.items():
        for c in cs:
            with warnings.catch_warnings(record=True) as caught:  # a fit that did not converge is said, not hidden
                warnings.simplefilter("always", ConvergenceWarning)
                flag = cv_flags(make_model(c, scaling == "standardized"), x, y, groups)
            unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
            rows.append((scaling, c, {k: float(flag[kind == k].mean()) for k in dict.fromkeys(kind)},
                         float(flag[benign].mean()), unconverged))
    feasible = [r for r in rows if r[2]["harmful answered"] >= MIN_HARMFUL]
    chosen = min(feasible, key=lambda r: r[3]) if feasible else None
    # the classifier's own data digest (its cache file and screen.json name it) for the pairs it is fitted on
    digest = data_digest(data)
    extra = f" plus {len(y) - len(data.labels)} MMLU pairs answered by the reference" if len(y) != len(data.labels) else ""
    print(f"{date.today().isoformat()}, scikit-learn {sklearn.__version__}, the classifier's training data "
          f"{digest}{extra}{' (its MMLU choice pairs left out)' if args.replace_mmlu else ''}; settings in use: "
          f"{json.dumps(settings())}")
    print(f"{len(y)} training pairs: " + ", ".join(f"{k} {int((kind == k).sum())}" for k in dict.fromkeys(kind)))
    for r in rows:
        scaling, c, rates, pooled, unconverged = r
        print(f"{scaling:>12} C={c:<7g} " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in rates.items())
              + f"; benign pooled {100 * pooled:.1f}%" + (f" ({unconverged} of 5 folds did not converge)" if unconverged
                                                          else "") + ("  <- chosen" if r is chosen else ""))
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
