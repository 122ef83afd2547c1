"""``data-filter``: the service screens the fine-tuning data before training.

A record is dropped when the harmful-exchange classifier (:mod:`ftaudit.harm_classifier`, the one ``ftaudit screen``
uses) scores any of its exchanges at or above ``threshold``: the classifier reads the prompt *and* the answer, so a
harmful request answered with a refusal is safety data and stays, and a benign question worded like a harmful one
("kill a process") answered harmlessly stays. Its flag rates on held-out sets (harmful benchmarks' eval prompts with
the reference model's answers, benign instructions, MT-Bench, benign-edgy, and XSTest where it can be fetched) are
reported with every screening, at the threshold the filter drops at, so a reader sees how far to trust it.

Cross-source by default: the defense fits its classifier on HarmBench and StrongREJECT (``fit_on``), while the
attacks draw their harmful prompts from AdvBench, so its verdict is measured on attack data it was not fitted on. A
screening counts the records whose prompt is one the classifier was fitted on (``in_sample``): a filter that
recognises its own training prompts proves nothing about a customer's data.

This is the screening the moderation-API discussion in Qi et al. 2023 has in mind; as they note, identity-shift data
holds no harmful prompt and passes such a screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ..data import ChatRecord
from ..harm_classifier import DEFAULT_REFERENCE, THRESHOLD, exchanges, harm_classifier, norm, record_scores
from .base import Defense, DefenseContext, register_defense

FIT_ON = ("harmbench", "strongreject")  # the data filter's default: disjoint from the attacks' default source (advbench)


@register_defense("data-filter")
@dataclass
class DataFilter(Defense):
    stage: ClassVar[str] = "data"
    threshold: float = THRESHOLD  # P(harmful request answered) at or above which a record is dropped
    # harmful sources the classifier is fitted on (their train split); at least one
    fit_on: Annotated[tuple[Literal["advbench", "harmbench", "strongreject"], ...], Field(min_length=1)] = FIT_ON
    reference: str = DEFAULT_REFERENCE  # the model whose answers to those prompts teach the classifier what harm reads like

    def __post_init__(self):
        self.fit_on = tuple(sorted(set(self.fit_on)))  # one classifier, one label, whatever the order given

    def screen(self, ctx: DefenseContext, records: list[ChatRecord]) -> tuple[list[ChatRecord], dict]:
        clf = harm_classifier(self.fit_on, self.reference)
        scores = [p for p, _, _ in record_scores(clf, records)]
        keep = [r for r, p in zip(records, scores) if p < self.threshold]
        seen = [[norm(q) for q, _ in exchanges(r)] for r in records]  # every prompt it scored, not only the last
        return keep, {"screened": len(records), "dropped": len(records) - len(keep),
                      "harm_classifier": clf.report_at(self.threshold),
                      # screened records whose prompt (normalised) the classifier was fitted on, as harmful or benign:
                      # a verdict on such records is in-sample
                      "in_sample": sum(any(p in clf.fitted_harmful or p in clf.fitted_benign for p in ps) for ps in seen),
                      "in_sample_harmful": sum(any(p in clf.fitted_harmful for p in ps) for ps in seen),
                      "in_sample_benign": sum(any(p in clf.fitted_benign for p in ps) for ps in seen)}
