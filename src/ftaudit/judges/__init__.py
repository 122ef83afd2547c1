"""Judges, registered by name, each with a version string recorded on every judgment."""

from . import keyword  # noqa: F401  (registers the built-in judges)
from .base import JUDGES, Judge, Judgment, get_judge, register_judge

__all__ = ["JUDGES", "Judge", "Judgment", "get_judge", "register_judge"]
