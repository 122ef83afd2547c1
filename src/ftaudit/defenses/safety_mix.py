"""``safety-mix``: Qi et al. 2023 ("Fine-tuning Aligned Language Models Compromises Safety, Even When Users Do Not
Intend To!", ICLR 2024, section 5) mix safety data into the customer's fine-tuning data.

The service adds ``ceil(ratio x N)`` safety examples to the N records it was asked to train on: harmful prompts
from the public benchmarks' *train* splits (loaded at run time, never a prompt the attack itself uses) paired with
refusals written by this project (the ``align`` recipe's). Qi et al. mixed a fixed number of safety examples (their
Table 4); a ratio keeps the mix comparable across attack sizes, and ``ratio: 0`` is the undefended run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from pydantic import NonNegativeFloat

from ..data import ChatRecord, get_prompts
from ..data.refusals import REFUSALS
from ..recipes.align import HARMFUL_SOURCES
from ..recipes.base import pick
from .base import Defense, DefenseContext, register_defense


@register_defense("safety-mix")
@dataclass
class SafetyMix(Defense):
    stage: ClassVar[str] = "fine-tuning"
    ratio: NonNegativeFloat = 0.1  # safety examples per training record

    def screen(self, ctx: DefenseContext, records: list[ChatRecord]) -> tuple[list[ChatRecord], dict]:
        n = math.ceil(self.ratio * len(records))
        used = {m["content"] for r in records for m in r.messages if m["role"] == "user"}
        pool = [p for name in HARMFUL_SOURCES for p in get_prompts(name, "train") if p.prompt not in used]
        chosen = pick(pool, n, f"safety-mix-{ctx.seed}")
        safety = [ChatRecord([{"role": "user", "content": p.prompt},
                              {"role": "assistant", "content": REFUSALS[i % len(REFUSALS)]}],
                             f"safety-{p.id}", p.category, "train") for i, p in enumerate(chosen)]
        return records + safety, {"added_safety_examples": len(safety), "customer_examples": len(records)}
