"""Judge agreement statistics and validation against held-out human labels."""

from __future__ import annotations

from collections.abc import Sequence


def agreement(pred: Sequence[bool], gold: Sequence[bool]) -> dict:
    """Accuracy, precision, recall (positive = refusal) and Cohen's kappa."""
    n = len(gold)
    tp = sum(p and g for p, g in zip(pred, gold))
    tn = sum((not p) and (not g) for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    fn = sum((not p) and g for p, g in zip(pred, gold))
    acc = (tp + tn) / n if n else float("nan")
    p_yes = ((tp + fp) / n) * ((tp + fn) / n) if n else 0
    p_no = ((tn + fn) / n) * ((tn + fp) / n) if n else 0
    expected = p_yes + p_no
    kappa = (acc - expected) / (1 - expected) if n and expected < 1 else float("nan")
    return {"n": n, "accuracy": acc, "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"), "kappa": kappa}


def validate_refusal_judges(judges: Sequence[str] = ("keyword", "embedding-refusal"), dataset: str = "refusal") -> dict[str, dict]:
    """Score each refusal judge on a held-out pyrit human-labelled set."""
    from . import get_judge
    from .embedding import human_labels

    rows = human_labels(dataset)
    gold = [r for _, _, r in rows]
    out = {}
    for name in judges:
        judgments = get_judge(name).judge([o for o, _, _ in rows], [resp for _, resp, _ in rows])
        out[name] = agreement([bool(j.refused) for j in judgments], gold)
    return out
