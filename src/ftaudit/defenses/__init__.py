"""Defenses and mitigations, registered by name (see :mod:`.base`); importing this package registers the built-ins."""

from . import booster, constrained_sft, data_filter, lisa, safelora, safety_mix, safety_recovery, vaccine  # noqa: F401  (registration)
from .base import DEFENSES, STAGES, Defense, DefenseContext, get_defense, register_defense

__all__ = ["DEFENSES", "STAGES", "Defense", "DefenseContext", "get_defense", "register_defense"]
