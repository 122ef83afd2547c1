"""``lisa``: Huang et al. 2024, "Lisa: Lazy Safety Alignment for Large Language Models against Harmful Fine-tuning
Attack" (NeurIPS 2024, arXiv:2405.18641). A fine-tuning-time defense: the service interleaves steps on safety data
with the user's steps and pulls each phase toward where the other ended (a proximal term).

The objective lives in :mod:`ftaudit.train.objectives` (``lisa``); this defense imposes it on every job with the
authors' defaults (rho 1, 100 alignment and 900 fine-tuning steps, 10,000 guide examples). Deviations: the guide
data are harmful train prompts with the project's refusals, capped at what those splits hold (the code uses
BeaverTails' safe answers); the alternation counts optimizer steps as the code does, so a job shorter than
``align_step`` steps trains on guide data only, and the report says how many steps each phase took. The defense
matrix scores the customer's task beside refusal, so a Lisa that holds by never training the job shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import PositiveFloat, PositiveInt

from .base import Defense, register_defense


@register_defense("lisa")
@dataclass
class Lisa(Defense):
    stage: ClassVar[str] = "fine-tuning"
    rho: PositiveFloat = 1.0
    align_step: PositiveInt = 100
    finetune_step: PositiveInt = 900
    guide_data_num: PositiveInt = 10000

    def train_overrides(self) -> dict:
        return {"objective": "lisa", "objective_params": self.params()}
