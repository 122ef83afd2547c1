"""How many prompts a gate needs: the smallest evaluation whose interval could pass a threshold at all.

A gate passes a threshold only when the whole 95% interval is on its safe side (:mod:`ftaudit.decisions`), so a small
evaluation cannot pass a tight threshold whatever the model does. These functions invert the intervals ftaudit uses
(the interval widths themselves, not a normal approximation of them): the prompts a *zero* refusal change needs for
Newcombe's paired interval to stay within a maximum drop (at every refusal count the base model could have, when
its rate is not known yet), the prompts a rate needs for its Wilson interval to stay
under a maximum, and the items a mean needs (its interval narrows as 1/sqrt(n)). ``audit-job --gate`` sizes its
evaluation sets with them; ``ftaudit gate`` prints them beside an unproven row.
"""

from __future__ import annotations

import math

import numpy as np

MOST = 20_000  # beyond this many prompts the answer is "no evaluation will do": say so rather than search on
# an initial refusal rate below this leaves nothing to protect (decisions.NOTHING_TO_PROTECT_BELOW): no sizing for it
FLOOR = 0.10


def _wilson(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilson limits for arrays (statsmodels), with the exact ends at k = 0 and k = n, as :func:`metrics.wilson`."""
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return np.where(k == 0, 0.0, lo), np.where(k == n, 1.0, hi)


def _zero_change_drop(n: int, a: np.ndarray) -> np.ndarray:
    """Upper end (a fraction) of Newcombe's method-10 drop interval when none of n prompts changes its verdict and a of
    them are refused before and after (b = c = 0), vectorised over a; checked against :func:`metrics.newcombe_paired`
    in the tests."""
    d = n - a
    p = a / n
    lo, hi = _wilson(a, np.full_like(a, n))
    big = a * d
    corrected = np.where(big > n / 2, big - n / 2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(big > 0, corrected / big, 0.0)
    x, y = p - lo, hi - p
    return np.sqrt(np.maximum(0.0, x * x - 2 * phi * x * y + y * y))


def _first_stable(ok, most: int = MOST) -> int | None:
    """The smallest n in [1, most] from which ``ok`` holds for every n up to a window beyond it (max(20, n/5)):
    the interval widths jump with the rounding of counts, so a bisection would trust a lucky n. A doubling search
    finds where to start: below half the first power of two that holds, nothing is tried."""
    top = 1
    while not ok(top):
        if top >= most:
            return None
        top = min(2 * top, most)
    n = max(1, top // 4)
    while n <= most:
        if ok(n):
            window = range(n + 1, min(most, n + max(20, n // 5)) + 1)
            bad = next((m for m in window if not ok(m)), None)
            if bad is None:
                return n
            n = bad + 1
        else:
            n += 1
    return None


def prompts_for_zero_change(initial: float | None, max_drop_pts: float) -> int | None:
    """Prompts per set for which an unchanged model (no prompt changes its verdict) has a Newcombe drop interval wholly
    within ``max_drop_pts`` points: at refusal rate ``initial``, or, when it is not known (None), at every refusal
    count from 10% of the prompts to all of them (the worst case decides)."""
    def ok(n: int) -> bool:
        if initial is None:
            counts = np.arange(max(1, int(np.ceil(FLOOR * n))), n + 1, dtype=float)
        else:
            counts = np.array([float(round(initial * n))])
        return bool((100 * _zero_change_drop(n, counts)).max() <= max_drop_pts)

    return _first_stable(ok)


def prompts_for_rate(observed: float, maximum: float) -> int | None:
    """Prompts for which a rate measured at ``observed`` has its Wilson upper limit at or under ``maximum``; None
    when the rate itself is at or above it (no number of prompts proves it)."""
    if observed >= maximum:
        return None

    def ok(n: int) -> bool:
        return bool(_wilson(np.array([float(round(observed * n))]), np.array([float(n)]))[1][0] <= maximum)

    return _first_stable(ok)


def prompts_at_change(n: int, ci: tuple[float, float], value: float, maximum: float) -> int | None:
    """Prompts (items) per set at which a change measured as ``value`` on ``n`` would keep its whole interval at or
    under ``maximum``, if its upper half-width shrinks as 1/sqrt(n); None when the value itself is beyond."""
    if value >= maximum or n <= 0:
        return None
    upper = ci[1] - value
    if upper <= 0:
        return n
    return math.ceil(n * (upper / (maximum - value)) ** 2)


items_for_mean = prompts_at_change  # a capability mean narrows the same way


def size_for_gate(max_refusal_drop: float | None = None, max_attack_success: float | None = None,
                  max_over_refusal: float | None = None, initial: float | None = None) -> dict[str, int | None]:
    """Prompts per set each threshold needs before anything is measured: for the refusal drop the worst case over the
    initial refusal rates a base model could have (or ``initial`` when known); for a rate the prompts at which a
    rate of zero would pass (the most favourable case: a real model needs more)."""
    out: dict[str, int | None] = {}
    if max_refusal_drop is not None:
        out["max_refusal_drop"] = prompts_for_zero_change(initial, max_refusal_drop)
    for name, value in (("max_attack_success", max_attack_success), ("max_over_refusal", max_over_refusal)):
        if value is not None:
            out[name] = prompts_for_rate(0.0, value)
    return out
