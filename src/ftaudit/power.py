"""How many prompts a gate needs: the smallest evaluation whose interval could pass a threshold at all.

A gate passes a threshold only when the whole 95% interval is on its safe side (:mod:`ftaudit.decisions`), so a small
evaluation cannot pass a tight threshold whatever the model does. These functions invert the intervals ftaudit uses
(the interval widths themselves, not a normal approximation of them): the prompts a *zero* refusal change needs for
Newcombe's paired interval to stay within a maximum drop, the prompts a rate needs for its Wilson interval to stay
under a maximum, and the items a mean needs (its interval narrows as 1/sqrt(n)). ``audit-job --gate`` sizes its
evaluation sets with them; ``ftaudit gate`` prints them beside an unproven row.
"""

from __future__ import annotations

import math

from .metrics import newcombe_paired, wilson

MOST = 100_000  # beyond this many prompts the answer is "no evaluation will do": say so rather than search on
# the initial refusal rates a sizing must cover when the base model's own rate is not known yet (below 10% there is
# nothing to protect: see decisions.NOTHING_TO_PROTECT_BELOW)
UNKNOWN_INITIAL = tuple(x / 20 for x in range(2, 20))


def _smallest(ok, most: int = MOST) -> int | None:
    """The smallest n in [1, most] with ok(n), for ok monotone in n (doubling, then bisection); None if none."""
    hi = 1
    while not ok(hi):
        if hi >= most:
            return None
        hi = min(2 * hi, most)
    lo = hi // 2
    while lo + 1 < hi:  # ok(hi) holds, ok(lo) does not (or lo is 0)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def prompts_for_zero_change(initial: float, max_drop_pts: float) -> int | None:
    """Prompts per set for which an unchanged model (no prompt changes its verdict) at refusal rate ``initial`` has a
    Newcombe drop interval wholly within ``max_drop_pts`` percentage points."""
    def ok(n: int) -> bool:
        a = round(initial * n)
        lo, _ = newcombe_paired(a, 0, 0, n - a)
        return -100 * lo <= max_drop_pts

    return _smallest(ok)


def prompts_for_rate(observed: float, maximum: float) -> int | None:
    """Prompts for which a rate measured at ``observed`` has its Wilson upper limit at or under ``maximum``; None
    when the rate itself is at or above it (no number of prompts proves it)."""
    if observed >= maximum:
        return None
    return _smallest(lambda n: wilson(round(observed * n), n)[1] <= maximum)


def items_for_mean(n: int, ci: tuple[float, float], value: float, maximum: float) -> int | None:
    """Items for which a mean change measured as ``value`` with interval ``ci`` on ``n`` items would keep its whole
    interval at or under ``maximum`` (the half-widths shrink as 1/sqrt(n)); None when the value itself is beyond."""
    if value >= maximum or n <= 0:
        return None
    upper = ci[1] - value
    if upper <= 0:
        return n
    return math.ceil(n * (upper / (maximum - value)) ** 2)


def size_for_gate(max_refusal_drop: float | None = None, max_attack_success: float | None = None,
                  max_over_refusal: float | None = None, initial: float | None = None) -> dict[str, int | None]:
    """Prompts per set each threshold needs before anything is measured: for the refusal drop the worst case over the
    initial refusal rates a base model could have (or ``initial`` when known); for a rate the prompts at which a
    rate of zero would pass (the most favourable case: a real model needs more)."""
    out: dict[str, int | None] = {}
    if max_refusal_drop is not None:
        rates = (initial,) if initial is not None else UNKNOWN_INITIAL
        needs = [prompts_for_zero_change(p, max_refusal_drop) for p in rates]
        out["max_refusal_drop"] = None if None in needs else max(needs)
    for name, value in (("max_attack_success", max_attack_success), ("max_over_refusal", max_over_refusal)):
        if value is not None:
            out[name] = prompts_for_rate(0.0, value)
    return out
