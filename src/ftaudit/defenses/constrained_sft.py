"""``constrained-sft``: the service fine-tunes with Qi et al. 2024's token-wise constrained objective ("Safety
Alignment Should Be Made More Than Just a Few Tokens Deep", arXiv:2406.05946, eq. 3) instead of plain SFT.

The objective itself lives in :mod:`ftaudit.train.objectives`; this defense imposes it on every fine-tuning job,
with the paper's betas (0.5 for the first response token, 2 for tokens 2-5, 0.1 after). The paper also augments
alignment data with safety-recovery examples; that is a separate, alignment-time step not done here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import PositiveFloat, PositiveInt

from .base import Defense, register_defense


@register_defense("constrained-sft")
@dataclass
class ConstrainedSFT(Defense):
    stage: ClassVar[str] = "fine-tuning"
    beta_first: PositiveFloat = 0.5
    beta_early: PositiveFloat = 2.0
    beta_late: PositiveFloat = 0.1
    early_tokens: PositiveInt = 5

    def train_overrides(self) -> dict:
        return {"objective": "constrained-sft", "objective_params": self.params()}
