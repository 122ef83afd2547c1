"""Experiment specs (YAML), grid expansion, execution with resume, and tamper-resistance scores."""

from .spec import ExperimentSpec, GridPoint, load_spec
from .tamper import tamper_resistance

__all__ = ["ExperimentSpec", "GridPoint", "load_spec", "tamper_resistance"]
