"""Experiment specs (YAML), grid expansion, execution with resume, and tamper-resistance scores."""

from ..tamper import tamper_resistance
from .spec import ExperimentSpec, GridPoint, load_spec

__all__ = ["ExperimentSpec", "GridPoint", "load_spec", "tamper_resistance"]
