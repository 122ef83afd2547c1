"""Every interval ftaudit prints, checked against published or independently computed values, and its coverage.

Published values: Wilson limits from Newcombe (1998a, Stat Med 17:857, Table I); Newcombe's paired method 10 from
Newcombe (1998b, Stat Med 17:2635, Table III), Bentur et al. and Cavo et al. as Fagerland, Lydersen and Laake
(Statistical Analysis of Contingency Tables, ch. 8) give them. The BCa interval is compared with the exact
bootstrap (every resample enumerated); the two bootstraps of seeds x prompts and of the tamper curve with an
independent resampling. Coverage: exact (enumerated) for Wilson and Newcombe, a seeded simulation for the
bootstraps, all at n = 40 over true rates in [0.05, 0.95]; each prints its coverage next to the nominal 95% and
fails below 0.90.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.special import ndtri
from scipy.stats import binom, multinomial, norm

from ftaudit.coverage import (bca_coverage, budget_coverage, drop_coverage, newcombe_coverage, seeds_coverage,
                              wilson_coverage)
from ftaudit.metrics import across_seeds, mean_ci, newcombe_paired, wilson
from ftaudit.tamper import crossing_interval, tamper_curve

N = 40
FLOOR = 0.90  # the coverage every interval must keep at every rate of the grid
GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


@pytest.mark.parametrize("k, n, lo, hi", [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
                                          (1, 29, 0.0061, 0.1718)])
def test_wilson_matches_newcombes_published_limits(k, n, lo, hi):
    assert wilson(k, n) == pytest.approx((lo, hi), abs=6e-5)


# (e, f, g, h) as Newcombe prints them: e both positive, f first only, g second only, h neither; the interval is for
# (f - g) / N. ftaudit's newcombe_paired(a, b, c, d) gives after - before with b: before only, c: after only.
NEWCOMBE_TABLE_III = [
    ((36, 12, 2, 0), (0.0569, 0.3404)), ((20, 12, 2, 16), (0.0562, 0.3292)), ((18, 12, 2, 18), (0.0562, 0.3290)),
    ((36, 14, 0, 0), (0.1528, 0.4167)), ((35, 14, 0, 1), (0.1461, 0.4175)), ((18, 14, 0, 18), (0.1441, 0.3963)),
    ((2, 97, 1, 0), (0.8721, 0.9854)), ((1, 97, 1, 1), (0.8736, 0.9850)), ((0, 29, 1, 0), (0.6666, 0.9882)),
    ((2, 98, 0, 0), (0.9178, 0.9945)), ((1, 98, 0, 1), (0.9171, 0.9916)), ((0, 30, 0, 0), (0.8395, 1.0)),
    ((54, 0, 0, 0), (-0.0664, 0.0664)), ((53, 0, 0, 1), (-0.0729, 0.0729)), ((30, 0, 0, 24), (-0.0358, 0.0358)),
    ((29, 0, 0, 25), (-0.0354, 0.0354)), ((28, 0, 0, 26), (-0.0352, 0.0352)), ((27, 0, 0, 27), (-0.0351, 0.0351)),
]
FAGERLAND = [((1, 1, 7, 12), (-0.5069, -0.0256)),  # Bentur et al.: airway hyper-responsiveness before/after SCT
             ((59, 6, 16, 80), (-0.1186, -0.0046)),  # Cavo et al.
             ((1, 0, 0, 1), (-0.5734, 0.5734))]


@pytest.mark.parametrize("cells, limits", NEWCOMBE_TABLE_III + FAGERLAND)
def test_newcombe_method_10_matches_published_examples(cells, limits):
    e, f, g, h = cells
    assert newcombe_paired(e, g, f, h) == pytest.approx(limits, abs=1.1e-4)


def test_newcombe_never_collapses_when_no_prompt_changed():
    """20 of 40 refused before and after, the same 20: the case of a rejected job or an erased adapter."""
    lo, hi = newcombe_paired(20, 0, 0, 20)
    assert lo < -0.04 and hi > 0.04 and lo == pytest.approx(-hi)


def _exact_bca(x: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """BCa limits of the mean from the exact bootstrap distribution (every resample, multinomial weights), with the
    jackknife acceleration and the mid-rank bias correction scipy uses: independent of scipy's resampling."""
    n = len(x)
    counts = np.array([c for c in itertools.product(range(n + 1), repeat=n) if sum(c) == n]) if n <= 6 else None
    if counts is None:  # stars and bars: every composition of n into n parts
        counts = []
        for bars in itertools.combinations(range(2 * n - 1), n - 1):
            edges = (-1, *bars, 2 * n - 1)
            counts.append([edges[i + 1] - edges[i] - 1 for i in range(n)])
        counts = np.array(counts)
    weights = multinomial.pmf(counts, n, [1 / n] * n)
    stats = counts @ x / n
    theta = x.mean()
    z0 = ndtri(weights[stats < theta - 1e-12].sum() + 0.5 * weights[np.abs(stats - theta) <= 1e-12].sum())
    jack = np.array([np.delete(x, i).mean() for i in range(n)])
    d = jack.mean() - jack
    a = (d ** 3).sum() / (6 * (d ** 2).sum() ** 1.5)
    order = np.argsort(stats)
    cdf = np.cumsum(weights[order])
    out = []
    for z in (ndtri(alpha / 2), ndtri(1 - alpha / 2)):
        level = norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
        out.append(float(stats[order][np.searchsorted(cdf, level)]))
    return out[0], out[1]


def test_bca_interval_matches_the_exact_bootstrap():
    x = np.array([1, 1, 1, 1, 1, 2, 3, 5], dtype=float)  # skewed 1-5 scores: BCa moves away from the percentile interval
    lo, hi = _exact_bca(x)
    got = mean_ci(x, (1, 5))["ci"]
    assert got == pytest.approx([lo, hi], abs=0.06)
    percentile = np.percentile(np.random.default_rng(0).choice(x, (20000, len(x))).mean(axis=1), [2.5, 97.5])
    assert abs(percentile[1] - hi) > 0.15  # so the check above can tell BCa from a plain percentile interval


def test_across_seeds_matches_an_independent_two_level_bootstrap_and_its_closed_form_floor():
    rng = np.random.default_rng(3)
    per = {s: {str(i): float(v) for i, v in enumerate(rng.random(N) < 0.35 + 0.1 * s)} for s in range(3)}
    got = across_seeds(per, "refusal_rate", n_boot=4000)
    m = np.array([[per[s][str(i)] for i in range(N)] for s in range(3)])
    si, pi = rng.integers(0, 3, (20000, 3)), rng.integers(0, N, (20000, N))
    reps = np.array([m[si[b]][:, pi[b]].mean() for b in range(20000)])
    expected = np.quantile(reps, [0.025, 0.975])
    floor = wilson(m.mean(axis=0).sum(), N)
    assert got["ci"] == pytest.approx([min(expected[0], floor[0]), max(expected[1], floor[1])], abs=0.012)
    ones = across_seeds({s: {str(i): 1.0 for i in range(N)} for s in range(3)}, "refusal_rate")
    assert ones["ci"] == pytest.approx([N / (N + 1.959964 ** 2), 1.0], abs=1e-4)  # Wilson at k = n, in closed form


def test_tamper_drop_interval_is_an_independent_paired_bootstrap_widened_to_newcombe():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(5)
    initial = (rng.random(N) < 0.9).astype(float)
    attacked = initial * (rng.random(N) < 0.5)
    got = tamper_curve(initial, [{"budget": 10.0, "seeds": attacked[None, :]}], n_boot=4000)["points"][0]
    res = bootstrap((initial, attacked), lambda b, a, axis: (b.mean(axis) - a.mean(axis)) / b.mean(axis), paired=True,
                    vectorized=True, n_resamples=20000, method="percentile", random_state=np.random.default_rng(6))
    lo, hi = newcombe_paired(*[float(x) for x in ((initial * attacked).sum(), (initial * (1 - attacked)).sum(),
                                                  ((1 - initial) * attacked).sum(), ((1 - initial) * (1 - attacked)).sum())])
    p0 = initial.mean()
    expected = [min(res.confidence_interval.low, -hi / p0), min(1.0, max(res.confidence_interval.high, -lo / p0))]
    assert got["drop_ci"] == pytest.approx(expected, abs=0.02)
    # the attacked model refuses nothing: the bootstrap collapses to [1, 1]; Newcombe's interval keeps it open
    none = tamper_curve(initial, [{"budget": 10.0, "seeds": np.zeros((1, N))}])["points"][0]
    k = initial.sum()
    assert none["drop_ci"][1] == 1.0 and none["drop_ci"][0] == pytest.approx(-newcombe_paired(0, k, 0, N - k)[1] / p0)
    assert none["drop_ci"][0] < 0.95


def test_a_crossing_at_the_smallest_budget_has_no_lower_end():
    reps = np.array([[0.9, 0.95, 1.0]] * 100)  # every replicate halves refusal at the smallest budget
    assert crossing_interval([10.0, 20.0, 40.0], reps, 0.5) == [0.0, 10.0]
    mixed = np.array([[0.9, 0.95, 1.0]] * 5 + [[0.25, 0.75, 1.0]] * 95)  # 5% cross at once, the rest at 15
    assert crossing_interval([10.0, 20.0, 40.0], mixed, 0.5) == [0.0, 15.0]
    never = np.array([[0.1, 0.2, 0.3]] * 100)
    assert crossing_interval([10.0, 20.0, 40.0], never, 0.5) == [None, None]
    undefined = np.array([[np.nan] * 3] * 5 + [[0.1, 0.2, 0.3]] * 95)  # resamples with no initial refusal
    assert crossing_interval([10.0, 20.0, 40.0], undefined, 0.5)[0] == 0.0  # never read as "not reached"


# ---------------------------------------------------------------- coverage at n = 40 over true rates in [0.05, 0.95]

def _report(name: str, coverage: dict) -> None:
    print(f"\n{name}: coverage at n={N} (nominal 95%): " + ", ".join(f"{k}: {v:.3f}" for k, v in coverage.items()))
    low = {k: v for k, v in coverage.items() if v < FLOOR}
    assert not low, f"{name} covers less than {FLOOR:.0%} at {low}"


def test_wilson_coverage_exact():
    _report("Wilson", wilson_coverage(N, GRID))


def test_newcombe_coverage_exact():
    """Every 2x2 table of 40 pairs enumerated: before at rate p; after keeps half of the refusals (an attack), or is
    independent at the same rate, or refuses exactly the same prompts."""
    _report("Newcombe method 10", newcombe_coverage(N, GRID[::2]))


def test_bca_coverage_simulated():
    _report("BCa mean of 1-5 scores", bca_coverage(N, (0.05, 0.25, 0.5, 0.75, 0.95), sims=120))


def test_across_seeds_coverage_simulated():
    _report("seeds x prompts bootstrap", seeds_coverage(N, GRID[::3], sims=150))


def test_tamper_drop_coverage_simulated():
    _report("tamper drop (joint bootstrap + Newcombe)", drop_coverage(N, (0.05, 0.25, 0.45, 0.65, 0.85), sims=150))


def test_tamper_budget_coverage_simulated():
    _report("tamper budget (joint bootstrap)", budget_coverage(N, (0.15, 0.35, 0.55, 0.75, 0.95), sims=120))


def test_coverage_check_can_fail():
    """The coverage harness itself: a Wald interval at p = 0.05, n = 40 covers about 87%, and is caught."""
    def wald(k):
        p = k / N
        half = 1.959964 * math.sqrt(p * (1 - p) / N)
        return p - half, p + half

    cov = sum(binom.pmf(k, N, 0.05) for k in range(N + 1) if wald(k)[0] <= 0.05 <= wald(k)[1])
    with pytest.raises(AssertionError):
        _report("Wald (must fail)", {0.05: cov})
