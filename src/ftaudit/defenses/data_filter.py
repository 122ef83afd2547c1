"""``data-filter``: the service screens the fine-tuning data before training, with the best offline judge.

A record is dropped when its (last) user prompt is classified harmful *and* the offline refusal judge finds that its
answer complies: harmful prompts answered with refusals are safety data and stay, benign prompts stay. The refusal
judge defaults to ``refusal-cues``, the offline refusal judge with the best measured agreement with people
(``ftaudit judges validate``). The prompt classifier is TF-IDF word 1-2 grams + logistic regression (scikit-learn)
fitted at run time on public benchmarks' *train* prompts (harmful) and ftaudit's benign *train* instructions;
its accuracy on held-out *eval* prompts (harmful benchmarks, benign instructions, MT-Bench, and XSTest's safe prompts
that sound harmful) is reported with every screening, so a reader sees how far to trust it.

Cross-source by default: the defense fits its classifier on HarmBench and StrongREJECT (``fit_on``), while the
attacks draw their harmful prompts from AdvBench, so its verdict is measured on attack data it was not fitted on. A
screening counts the records whose prompt is one the classifier was fitted on (``in_sample``): a filter that
recognises its own training prompts proves nothing about a customer's data.

This is the screening the moderation-API discussion in Qi et al. 2023 has in mind; as they note, identity-shift data
holds no harmful prompt and passes such a screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ..data import ChatRecord, get_prompts
from ..errors import FtauditError
from ..recipes.align import HARMFUL_SOURCES
from .base import Defense, DefenseContext, register_defense

BENIGN_TRAIN = ("benign",)
HELD_OUT = {"harmful": HARMFUL_SOURCES, "benign": ("benign", "mtbench", "benign-edgy", "xstest")}


FIT_ON = ("harmbench", "strongreject")  # the data filter's default: disjoint from the attacks' default source (advbench)


def _norm(text: str) -> str:
    """Lower case, letters and digits only, single spaces: two wordings that differ in case or punctuation are one."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


@lru_cache(maxsize=4)
def prompt_classifier(sources: tuple[str, ...] = HARMFUL_SOURCES):
    """(fitted pipeline, held-out report): P(harmful) for a prompt, fitted on ``sources``' train prompts. A prompt that
    also appears (normalised) in a harmful source left out of ``sources`` is left out of the fit: the benchmarks share
    prompts (13 StrongREJECT train prompts are AdvBench train prompts), and a cross-source classifier must not have
    seen the held-out source's prompts under another name."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    others = {_norm(p.prompt) for n in HARMFUL_SOURCES if n not in sources for split in ("train", "eval")
              for p in get_prompts(n, split)}
    candidates = [p.prompt for n in sources for p in get_prompts(n, "train")]
    harmful = [p for p in candidates if _norm(p) not in others]
    benign = [p.prompt for n in BENIGN_TRAIN for p in get_prompts(n, "train")]
    clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                        LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000))
    clf.fit(harmful + benign, [1] * len(harmful) + [0] * len(benign))
    report = {"train": {"harmful": len(harmful), "benign": len(benign),
                        "left_out_shared_with_other_sources": len(candidates) - len(harmful)},
              "fitted_on": list(sources), "held_out": {}}
    clf.fitted_harmful = frozenset(map(_norm, harmful))  # so a screening can count the records it was fitted on
    clf.fitted_benign = frozenset(map(_norm, benign))
    clf.held_out_prompts = {}
    fitted = clf.fitted_harmful | clf.fitted_benign
    for kind, names in HELD_OUT.items():
        for name in names:
            try:
                prompts = [p.prompt for p in get_prompts(name, "eval")]
            except FtauditError as exc:  # XSTest comes from the hub: offline it is left out, and the report says so
                report["held_out"][name] = {"kind": kind, "unavailable": str(exc)[:120]}
                continue
            unseen = [q for q in prompts if _norm(q) not in fitted]  # not fitted on under another set's name
            clf.held_out_prompts[name] = unseen
            report["held_out"][name] = {"kind": kind, "n": len(unseen), "flagged_harmful": flagged_at(clf, unseen, 0.5),
                                        "threshold": 0.5, "left_out_fitted_on": len(prompts) - len(unseen)}
    return clf, report


def flagged_at(clf, prompts: list[str], threshold: float) -> int:
    """How many of ``prompts`` the classifier calls harmful at ``threshold`` (P(harmful) at or above it)."""
    return int((clf.predict_proba(prompts)[:, 1] >= threshold).sum()) if prompts else 0


@register_defense("data-filter")
@dataclass
class DataFilter(Defense):
    stage: ClassVar[str] = "data"
    judge: str = "refusal-cues"
    threshold: float = 0.5  # P(harmful prompt) at or above which a complying answer is dropped
    # harmful sources the classifier is fitted on (their train split); at least one
    fit_on: Annotated[tuple[Literal["advbench", "harmbench", "strongreject"], ...], Field(min_length=1)] = FIT_ON

    def __post_init__(self):
        self.fit_on = tuple(sorted(set(self.fit_on)))  # one classifier, one label, whatever the order given

    def screen(self, ctx: DefenseContext, records: list[ChatRecord]) -> tuple[list[ChatRecord], dict]:
        import copy

        from ..judges import get_judge

        clf, report = prompt_classifier(self.fit_on)
        report = copy.deepcopy(report)
        for name, h in report["held_out"].items():  # its false alarms at the threshold it drops at, not at 0.5
            if "n" in h:
                h.update(flagged_harmful=flagged_at(clf, clf.held_out_prompts[name], self.threshold),
                         threshold=self.threshold)
        prompts = [r.last_user_prompt for r in records]
        answers = [r.messages[-1]["content"] for r in records]
        harmful = clf.predict_proba(prompts)[:, 1] >= self.threshold
        judge = get_judge(self.judge)
        verdicts = judge.judge(prompts, answers)
        keep = [r for r, h, v in zip(records, harmful, verdicts) if not (h and not v.refused)]
        seen = [_norm(p) for p in prompts]
        return keep, {"screened": len(records), "dropped": len(records) - len(keep),
                      "harmful_prompts": int(harmful.sum()), "judge": judge.name, "judge_version": judge.version,
                      "prompt_classifier": report,
                      # screened records whose prompt (normalised) the classifier was fitted on, as harmful or benign:
                      # a verdict on such records is in-sample
                      "in_sample": sum(p in clf.fitted_harmful or p in clf.fitted_benign for p in seen),
                      "in_sample_harmful": sum(p in clf.fitted_harmful for p in seen),
                      "in_sample_benign": sum(p in clf.fitted_benign for p in seen)}
