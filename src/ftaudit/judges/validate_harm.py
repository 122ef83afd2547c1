"""How far to trust a harm judge: its scores against people's harm scores on pyrit's labelled replies.

Label set ``pyrit-harm``: ``pyrit==1.1.0`` ``scorer_evals/harm/{exploits,hate_speech,info_integrity,privacy,
representational,self_harm,sexual,violence}.csv`` (604 replies to harmful objectives, each scored by a person in
{0, 0.25, 0.5, 0.75, 1}). ``limit`` takes the first N replies of each category file (a stable subset).

A judge's score is put on [0, 1] (``harmfulness`` 1-5 -> (s - 1) / 4; the others already are) and compared with
the human score two ways: Spearman's rank correlation (95% percentile bootstrap over replies, scipy), and the
binary view "harmful" = score >= 0.5 on both sides (accuracy with a Wilson interval, Cohen's kappa as in
:func:`~ftaudit.judges.validate.agreement_ci`). Unparseable verdicts are left out and counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..data.labelled import pyrit_csv
from ..errors import FtauditError

PYRIT_HARM = "pypi:pyrit==1.1.0/pyrit/datasets/scorer_evals/harm"
CATEGORIES = ("exploits", "hate_speech", "info_integrity", "privacy", "representational", "self_harm", "sexual", "violence")


def pyrit_harm_scores(limit: int | None = None) -> list[tuple[str, str, float, str]]:
    """(objective, response, human harm score in [0, 1], category), the first ``limit`` of each category."""
    out = []
    for category in CATEGORIES:
        rows = pyrit_csv(f"{PYRIT_HARM}/{category}.csv")
        for r in rows[:limit] if limit else rows:
            score = r.get("human_score_1", r.get("human_score"))
            out.append((r["objective"], r["assistant_response"], float(score), category))
    return out


def normalized(judge_name: str, score: float) -> float:
    """A harm judge's score on [0, 1], rescaled from the bounds of the metric it feeds (``metrics.SCORE_BOUNDS``:
    the 1-5 harmfulness rubric; the others are on [0, 1] already)."""
    from ..metrics import SCORE_BOUNDS, score_metric

    lo, hi = SCORE_BOUNDS.get(score_metric(judge_name), (0.0, 1.0))
    return (score - lo) / (hi - lo)


def spearman_ci(x: Sequence[float], y: Sequence[float]) -> tuple[float, list[float]]:
    """Spearman's rho and a 95% percentile bootstrap interval (replies resampled in pairs; a resample in which one
    side is constant counts as rho 0)."""
    import numpy as np
    from scipy.stats import bootstrap, spearmanr

    if np.ptp(x) == 0 or np.ptp(y) == 0:  # one side constant: no ranking to correlate (and scipy would warn)
        return float("nan"), [float("nan"), float("nan")]
    rho = float(spearmanr(x, y).statistic)

    def rho_of(a, b):  # a resample with one side constant has no ranking: it counts as no correlation
        return 0.0 if np.ptp(a) == 0 or np.ptp(b) == 0 else spearmanr(a, b).statistic

    res = bootstrap((np.asarray(x, float), np.asarray(y, float)), rho_of, paired=True, vectorized=False,
                    n_resamples=2000, method="percentile", random_state=0)
    lo, hi = res.confidence_interval
    return rho, [float(lo), float(hi)]


def validate_harm(judges: Sequence, limit: int | None = None, options: dict | None = None) -> list[dict]:
    """Score each harm judge (a name or a built judge) on ``pyrit-harm``; one row per judge, also stored."""
    from . import JUDGES, shared_judge
    from .validate import _remember, agreement_ci, timed_judge

    for name in judges:
        if isinstance(name, str) and JUDGES[name].measures != "harm":
            raise FtauditError(f"judge '{name}' measures refusal; validate it with the refusal label sets")
    rows = pyrit_harm_scores(limit)
    out = []
    for judge in judges:
        judge = shared_judge(judge, **(options or {})) if isinstance(judge, str) else judge
        got, speed = timed_judge(judge, [p for p, _, _, _ in rows], [r for _, r, _, _ in rows])
        scored = [(j, human, category) for j, (_, _, human, category) in zip(got, rows) if j.score is not None]
        pairs = [(normalized(judge.name, j.score), human) for j, human, _ in scored]
        row = {"judge": judge.name, "judge_version": judge.version, "set": f"pyrit-harm{f'@{limit}' if limit else ''}",
               "what": "human harm scores, pyrit scorer_evals/harm", "n": len(pairs), "unparseable": len(rows) - len(pairs),
               "held_out": bool(pairs), "speed": speed}
        if truncated := sum(bool(j.details.get("truncated")) for j in got):
            row["truncated"] = truncated  # replies the judge read only the opening of
        if pairs:
            verdicts = {a >= 0.5 for a, _ in pairs}
            if len(verdicts) == 1:  # one binary verdict for every reply: kappa is 0 by construction
                row["constant"] = "harmful" if verdicts.pop() else "not harmful"
            rho, rho_ci = spearman_ci([a for a, _ in pairs], [b for _, b in pairs])
            m = agreement_ci([a >= 0.5 for a, _ in pairs], [b >= 0.5 for _, b in pairs])
            row.update(spearman=rho, spearman_ci=rho_ci, **{k: m[k] for k in ("accuracy", "accuracy_ci", "kappa", "kappa_ci",
                                                                               "precision", "recall")})
            if all("expected" in j.details for j, _, _ in scored):  # a probability-read judge's finer ranking
                rho_e, rho_e_ci = spearman_ci([j.details["expected"] for j, _, _ in scored], [h for _, h, _ in scored])
                row.update(spearman_expected=rho_e, spearman_expected_ci=rho_e_ci)
            row["categories"] = {}
            for category in CATEGORIES:
                mine = [(normalized(judge.name, j.score), h) for j, h, c in scored if c == category]
                if mine:
                    r_c, ci_c = spearman_ci([a for a, _ in mine], [b for _, b in mine])
                    defined = r_c == r_c  # NaN where one side is constant in this category: stored as None
                    row["categories"][category] = {"n": len(mine), "spearman": r_c if defined else None,
                                                   "spearman_ci": ci_c if defined else None}
        out.append(row)
    _remember([r for r in out if r["held_out"]])
    return out
