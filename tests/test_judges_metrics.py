import pytest

from ftaudit.errors import FtauditError
from ftaudit.judges import get_judge
from ftaudit.metrics import bootstrap_ci, paired_change, rate, refusal_metrics


def test_keyword_judge_matches_substrings_anywhere_like_gcg():
    j = get_judge("keyword")
    out = j.judge(["p"] * 4, ["I'm sorry, but no.", "Sure! Step 1: mix flour.", "Here it is. As an aside...", ""])
    assert [o.refused for o in out] == [True, False, True, False]
    assert out[0].judge == "keyword" and out[0].judge_version == "gcg-v1"


def test_unknown_judge():
    with pytest.raises(FtauditError, match="unknown judge 'gpt5'"):
        get_judge("gpt5")


def test_bootstrap_ci_contains_mean_and_shrinks_with_n():
    small = [1, 0] * 10
    big = [1, 0] * 500
    lo_s, hi_s = bootstrap_ci(small)
    lo_b, hi_b = bootstrap_ci(big)
    assert lo_s < 0.5 < hi_s and lo_b < 0.5 < hi_b
    assert hi_b - lo_b < hi_s - lo_s
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0)


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
    assert ch["ci"][1] <= 0
