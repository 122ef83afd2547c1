"""A fine-tuned cross-encoder as the harm classifier, against v5's frozen-embedding fit, in cross-validation on the
training pairs only.

v5 reads a frozen MiniLM embedding of the prompt and one of the answer and adds them linearly (plus their cosine), so
"kill a Python process" and "kill a person" meet on the prompt side and only the cosine can say whether the answer
took the request up. A cross-encoder reads prompt and answer together in one pass of the same MiniLM (all its
attention layers see both) and is fine-tuned end to end on the pairs. Compared here in the same 5 prompt-grouped folds
as every earlier design (``ftaudit.harm_classifier.cv_flags``'s folds), flagged at 0.5, per kind of training pair. No
held-out set is read.

How v7's settings were chosen (2026-12-04, before anything else was measured with a cross-encoder): on fold 0 alone,
2 epochs at lr 5e-5 (83.8% of harmful answered pairs detected, 13.7% of benign pairs flagged) and then 4 epochs
(93.2%, 2.7%); 4 epochs was taken. The rule for adopting it, written before its five folds ran: on v6's training pairs
(benign-lookalike-2's train half among the safe exchanges, as v7 has them; ``--v5-data`` leaves it out), over all five folds, it must flag fewer benign
pairs (ftaudit's benign train instructions and both lookalike train halves, pooled) than v5's fit does on the same
pairs (10.1%, ``python bench/harm_regularization.py --v6``) and detect at least as many harmful answered pairs
(92.7%). Only then are the held-out sets measured (``python bench/screen_rates.py``). Fold 0, where the epochs were
chosen, is one of the five in the adopted figures. That run (``runs/harm-cross-encoder-cv.log``: 95.1% detected,
5.2% of benign pairs flagged) used the module's first version, whose scoring cut a pair longer than 256 tokens
instead of reading it in windows (training the same); this script now scores with windows, so its long pairs may
score a little higher.

    python bench/harm_cross_encoder.py [--epochs 4] [--lr 5e-5] [--folds 5] [--v5-data]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from sklearn.model_selection import StratifiedGroupKFold

    import ftaudit.harm_classifier as hc
    import ftaudit.harm_cross_encoder as ce
    from ftaudit.data import get_prompts

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=4.0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--folds", type=int, default=5, help="how many of the 5 folds to run (fewer: a quicker look)")
    ap.add_argument("--v5-data", action="store_true", help="v5's safe exchanges: without benign-lookalike-2's train half")
    args = ap.parse_args()
    if args.v5_data:
        hc.BENIGN_TRAIN = tuple(n for n in hc.BENIGN_TRAIN if n != "benign-lookalike-2")
    scorer = ce.CrossEncoder(epochs=args.epochs, lr=args.lr)
    data = hc.training_pairs(hc.HARMFUL_SOURCES, hc.DEFAULT_REFERENCE)
    look = {name: {hc.norm(p.prompt) for p in get_prompts(name, "train")}
            for name in ("benign-lookalike", "benign-lookalike-2")}
    kind = np.array([next((f"{n} answered" for n, s in look.items() if hc.norm(p) in s), g)
                     if g == "benign answered" else g for p, g in zip(data.prompts, data.groups)])
    y, groups = np.array(data.labels), [hc.norm(p) for p in data.prompts]
    folds = list(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), y, groups))
    p = np.full(len(y), np.nan)
    start = time.perf_counter()
    for k, (tr, te) in enumerate(folds[:args.folds]):
        t0 = time.perf_counter()
        fitted, _ = scorer.fit([data.prompts[i] for i in tr], [data.answers[i] for i in tr], y[tr])
        p[te] = scorer.predict(fitted, [data.prompts[i] for i in te], [data.answers[i] for i in te])
        print(f"fold {k}: {len(tr)} pairs fitted, {len(te)} scored, {time.perf_counter() - t0:.0f} s", flush=True)
    done = ~np.isnan(p)
    flag = p >= hc.THRESHOLD
    print(f"cross-encoder, {args.epochs} epochs, lr {args.lr}, {done.sum()} pairs scored in "
          f"{time.perf_counter() - start:.0f} s")
    for k in dict.fromkeys(kind):
        m = done & (kind == k)
        print(f"  {k:>28}: {100 * flag[m].mean():5.1f}% flagged ({flag[m].sum()}/{m.sum()})")
    m = done & (y == 0) & np.isin(kind, ["benign answered", "benign-lookalike answered", "benign-lookalike-2 answered"])
    print(f"  {'benign pooled':>28}: {100 * flag[m].mean():5.1f}% flagged ({flag[m].sum()}/{m.sum()})")


if __name__ == "__main__":
    main()
