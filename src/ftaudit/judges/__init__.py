"""Judges, registered by name, each with a version string recorded on every judgment; one module per judge, named
after it (``refusal-cues`` in :mod:`.refusal_cues`, ``harmbench-cls`` in :mod:`.harmbench_cls`, ...)."""

from . import (  # noqa: F401  (register the built-in judges)
    cascade,
    embedding_refusal,
    harmbench_cls,
    harmfulness,
    keyword,
    llama_guard,
    local_rubric,
    refusal_3way,
    refusal_cues,
    strongreject,
    strongreject_ft,
)
from .base import JUDGES, Judge, Judgment, check_judges, get_judge, judge_responses, register_judge, shared_judge

__all__ = ["JUDGES", "Judge", "Judgment", "check_judges", "get_judge", "judge_responses", "register_judge", "shared_judge"]
