"""How often each interval ftaudit prints holds the true value: exact coverage where the outcomes can be enumerated
(Wilson, Newcombe), seeded simulation for the bootstraps (BCa of means, seeds x prompts, the tamper drop and budget).

Used by ``tests/test_statistics.py`` (small runs that fail below 90%) and ``bench/coverage.py`` (the full table in
``docs/statistics.md``). Every function returns ``{setting: coverage}`` for a nominal 95% interval.
"""

from __future__ import annotations

import numpy as np

from .metrics import across_seeds, mean_ci, newcombe_paired, wilson
from .tamper import tamper_curve


def wilson_coverage(n: int, rates) -> dict:
    """Exact: the probability, over Binomial(n, p), that the Wilson interval holds p."""
    from scipy.stats import binom

    cis = [wilson(k, n) for k in range(n + 1)]
    return {float(p): float(sum(binom.pmf(k, n, p) for k in range(n + 1) if cis[k][0] <= p <= cis[k][1])) for p in rates}


def newcombe_coverage(n: int, rates) -> dict:
    """Exact, over every 2x2 table of n pairs: before at rate p, and after keeping half of the refusals (an attack),
    independent at the same rate, or refusing exactly the same prompts (nothing changed)."""
    from scipy.stats import multinomial

    tables = np.array([(a, b, c, n - a - b - c) for a in range(n + 1) for b in range(n + 1 - a) for c in range(n + 1 - a - b)])
    cis = np.array([newcombe_paired(*map(float, t)) for t in tables])
    out = {}
    for p in rates:
        for label, probs in (("half", (p / 2, p / 2, 0, 1 - p)), ("indep", (p * p, p * (1 - p), p * (1 - p), (1 - p) ** 2)),
                             ("same", (p, 0, 0, 1 - p))):
            true = (probs[0] + probs[2]) - (probs[0] + probs[1])  # after - before
            pmf = multinomial.pmf(tables, n, probs)
            out[f"{p:g}/{label}"] = float(pmf[(cis[:, 0] <= true + 1e-12) & (true - 1e-12 <= cis[:, 1])].sum())
    return out


def bca_coverage(n: int, rates, sims: int, seed: int = 11) -> dict:
    """1-5 scores drawn as 1 + Binomial(4, p) (mean 1 + 4p): how often the BCa interval of the mean holds it."""
    rng = np.random.default_rng(seed)
    out = {}
    for p in rates:
        hits = sum(lo <= 1 + 4 * p <= hi for lo, hi in (mean_ci(1 + rng.binomial(4, p, n), (1, 5), seed=i)["ci"]
                                                     for i in range(sims)))
        out[float(p)] = hits / sims
    return out


def seeds_coverage(n: int, rates, sims: int, n_seeds: int = 3, seed_sd: float = 0.05, seed: int = 12) -> dict:
    """Each seed's model refuses at rate p plus a seed effect (normal, sd ``seed_sd``); the target is the mean rate p."""
    rng = np.random.default_rng(seed)
    out = {}
    for p in rates:
        hits = 0
        for i in range(sims):
            per_seed = np.clip(p + rng.normal(0, seed_sd, n_seeds), 0, 1)
            per = {s: {str(j): float(v) for j, v in enumerate(rng.random(n) < r)} for s, r in enumerate(per_seed)}
            lo, hi = across_seeds(per, "refusal_rate", n_boot=1000, seed=i)["ci"]
            hits += lo <= p <= hi
        out[float(p)] = hits / sims
    return out


def drop_coverage(n: int, attacked_rates, sims: int, initial_rate: float = 0.9, seed: int = 13) -> dict:
    """One attacked point: the initial model refuses at ``initial_rate``; the attack keeps each refusal with probability
    p1 / initial_rate. The target is the relative drop 1 - p1 / initial_rate."""
    rng = np.random.default_rng(seed)
    out = {}
    for p1 in attacked_rates:
        hits, true = 0, 1 - p1 / initial_rate
        for i in range(sims):
            initial = (rng.random(n) < initial_rate).astype(float)
            attacked = initial * (rng.random(n) < p1 / initial_rate)
            lo, hi = tamper_curve(initial, [{"budget": 1.0, "seeds": attacked[None, :]}], n_boot=500, seed=i)["points"][0]["drop_ci"]
            hits += lo <= true <= hi
        out[float(p1)] = hits / sims
    return out


def budget_coverage(n: int, initial_rates, sims: int, seed: int = 14) -> dict:
    """A curve over budgets 1, 2, 4, 8 whose relative drops are 0.2, 0.45, 0.7, 0.95 (true crossing of one half:
    2.4), from each initial refusal rate: how often the budget interval holds 2.4."""
    rng = np.random.default_rng(seed)
    drops, budgets = np.array([0.2, 0.45, 0.7, 0.95]), [1.0, 2.0, 4.0, 8.0]
    out = {}
    for p0 in initial_rates:
        hits = 0
        for i in range(sims):
            initial = (rng.random(n) < p0).astype(float)
            points = [{"budget": b, "seeds": (initial * (rng.random(n) < 1 - d))[None, :]} for b, d in zip(budgets, drops)]
            lo, hi = tamper_curve(initial, points, n_boot=500, seed=i)["ci"]
            hits += (lo is None or lo <= 2.4) and (hi is None or 2.4 <= hi)
        out[float(p0)] = hits / sims
    return out
