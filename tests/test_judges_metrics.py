import math

import pytest

from ftaudit.errors import FtauditError
from ftaudit.judges import get_judge
from ftaudit.metrics import across_seeds, mcnemar_p, mean_ci, paired_change, rate, refusal_metrics, wilson


def test_keyword_judge_matches_substrings_anywhere_like_gcg():
    j = get_judge("keyword")
    out = j.judge(["p"] * 4, ["I'm sorry, but no.", "Sure! Step 1: mix flour.", "Here it is. As an aside...", ""])
    assert [o.refused for o in out] == [True, False, True, False]
    assert out[0].judge == "keyword" and out[0].judge_version.startswith("gcg-v1+")  # the list's hash follows


def test_unknown_judge():
    with pytest.raises(FtauditError, match="unknown judge 'gpt5'"):
        get_judge("gpt5")


def test_rate_intervals_do_not_collapse_at_0_and_100_percent():
    """Wilson: 0/40 is not [0, 0] (the percentile bootstrap gave that) and 40/40 is not [1, 1]. At k = 0 the Wilson
    limits are 0 and z^2 / (n + z^2) in closed form; at k = n, n / (n + z^2) and 1."""
    z2 = 1.959964 ** 2
    zero, full = rate([False] * 40), rate([True] * 40)
    assert zero["ci"] == pytest.approx([0.0, z2 / (40 + z2)], abs=1e-6)
    assert full["ci"] == pytest.approx([40 / (40 + z2), 1.0], abs=1e-6)
    assert all(math.isnan(x) for x in wilson(0, 0))  # NaN for no data, never a made-up interval


def test_paired_change_interval_is_valid_at_the_boundaries():
    """Newcombe's paired interval: 100% -> 0% on 40 prompts is [-1, -0.876], not the point [-1, -1] (phi = 0 with an
    empty margin, so the upper limit squares and adds both margins' Wilson distances, each z^2 / (n + z^2) in closed
    form); no change at 100% is +-0.0876, not [0, 0]."""
    z2 = 1.959964 ** 2
    before = {str(i): True for i in range(40)}
    after = {str(i): False for i in range(40)}
    ch = paired_change(before, after)
    assert ch["value"] == -1 and ch["ci"] == pytest.approx([-1.0, -1 + math.sqrt(2) * z2 / (40 + z2)], abs=1e-6)
    same = paired_change(before, before)
    assert same["value"] == 0 and same["ci"] == pytest.approx([-z2 / (40 + z2), z2 / (40 + z2)], abs=1e-6)


def test_mean_interval_is_bca_and_bounded_scores_do_not_collapse():
    m = mean_ci([1, 2, 3, 4, 5] * 8, (1, 5))
    assert m["value"] == 3 and m["ci"][0] < 3 < m["ci"][1]
    ones = mean_ci([1.0] * 40, (1, 5))  # every reply scored 1: the mean can still be above 1 in the population
    assert ones["ci"][0] == 1 and 1.3 < ones["ci"][1] < 1.4


def test_mcnemar_exact_matches_the_binomial():
    from scipy.stats import binomtest

    before = {str(i): i < 30 for i in range(40)}
    after = {str(i): i < 5 or 30 <= i < 33 for i in range(40)}  # 25 discordant one way, 3 the other
    assert mcnemar_p(before, after) == pytest.approx(binomtest(3, 28, 0.5).pvalue)


def test_across_seeds_interval_holds_seed_variation_and_never_collapses():
    prompts = [str(i) for i in range(40)]
    before = {k: 1.0 for k in prompts}
    broken = {s: {k: 0.0 for k in prompts} for s in (0, 1, 2)}
    agg = across_seeds(broken, "refusal_rate", before)
    assert agg["value"] == -1 and agg["ci"][0] == -1 and agg["ci"][1] > -0.95  # not [-1, -1]
    assert agg["spread"]["per_seed"] == {0: -1.0, 1: -1.0, 2: -1.0} and agg["n_seeds"] == 3
    varied = {0: {k: 0.0 for k in prompts}, 1: {k: float(i < 20) for i, k in enumerate(prompts)},
              2: {k: 1.0 for k in prompts}}  # seeds disagree: the interval must be wide
    wide = across_seeds(varied, "refusal_rate", before)
    assert wide["value"] == pytest.approx(-0.5) and wide["ci"][1] - wide["ci"][0] > 0.5
    assert wide["spread"]["min"] == -1 and wide["spread"]["max"] == 0


def test_rate_reports_n():
    r = rate([True, False, False, False])
    assert r["value"] == 0.25 and r["n"] == 4


def test_refusal_metrics_by_kind():
    rows = [{"model": "m", "attack": "a", "dataset": "adv", "kind": "harmful", "split": "eval", "judge": "keyword", "refused": r}
            for r in (1, 1, 1, 0)]
    rows += [{"model": "m", "attack": "a", "dataset": "ben", "kind": "benign", "split": "eval", "judge": "keyword", "refused": 1}]
    got = {(m["dataset"], m["metric"]): m["value"] for m in refusal_metrics(rows)}
    assert got == {("adv", "refusal_rate"): 0.75, ("adv", "attack_success_rate"): 0.25, ("ben", "over_refusal_rate"): 1.0}


def test_paired_change_uses_common_prompts():
    before = {"a": True, "b": True, "c": True, "z": False}
    after = {"a": False, "b": False, "c": True}
    ch = paired_change(before, after)
    assert ch["n"] == 3 and ch["value"] == pytest.approx(-2 / 3)
    assert ch["ci"][0] < -2 / 3 < ch["ci"][1] < 0.2
