"""Judges, registered by name, each with a version string recorded on every judgment."""

from . import embedding, keyword, llm, local, refusal_clf  # noqa: F401  (register the built-in judges)
from .base import JUDGES, Judge, Judgment, check_judges, get_judge, judge_responses, register_judge, shared_judge

__all__ = ["JUDGES", "Judge", "Judgment", "check_judges", "get_judge", "judge_responses", "register_judge", "shared_judge"]
