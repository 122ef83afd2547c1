"""``booster``: Huang et al. 2025, "Booster: Tackling Harmful Fine-tuning for Large Language Models via Attenuating
Harmful Perturbation" (ICLR 2025, arXiv:2409.01586). An alignment-time defense: the publisher safety-trains with a
regularizer that makes one normalized harmful-gradient step lower the harmful loss as little as possible, so later
harmful fine-tuning moves the model less. The objective lives in :mod:`ftaudit.train.objectives` (``booster``).

Here it runs the ``align`` recipe (the same refusals and benign answers, settings and seed as the undefended
``aligned`` model) under Booster's objective, from the model before safety training when the run aligns one, else on
top of the released model (the comparison with ``none`` then also carries the extra safety data; the report says
which). Like the paper, alignment is LoRA (merged afterwards).

Deviations: the code's harmful data are BeaverTails' harmful answers (5,000, taken from a part of the set the
attack's poison never comes from); ftaudit never writes harmful answers, so the harmful examples are StrongREJECT and
HarmBench *train* prompts answered at run time by the reference model the user names (``reference_model``), kept
where the keyword judge sees no refusal, at most ``bad_sample_num`` and at most half of each split. The attack
recipes draw from AdvBench by default, so, as in the code, the defender never hardens against the attacker's own
examples (an attack given ``source: harmbench`` or ``strongreject`` could share prompts: the report's cost record
names the sources).

Under bfloat16 mixed precision (a spec's ``mixed_precision``), the normalized harmful step (alpha 0.1 spread over
every LoRA weight: about 5e-5 an element for SmolLM2-135M at rank 16) is below bfloat16's spacing for most LoRA A
values (about 2e-4 near 0.04), which autocast rounds at each forward. The float32 master weights take the whole step,
but the forward pass after it sees a rounded one: element by element all or nothing, unbiased in expectation, noisier
than in float32. LoRA B values near zero keep it. The harmful loss change is then measured on that noisier step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import PositiveFloat, PositiveInt

from .base import Defense, DefenseContext, realign_context, register_defense


SOURCES = ("strongreject", "harmbench")  # the harmful train prompts it hardens against (the attacks use AdvBench)


@register_defense("booster")
@dataclass
class Booster(Defense):
    stage: ClassVar[str] = "alignment"
    lamb: PositiveFloat = 5.0
    alpha: PositiveFloat = 0.1
    bad_sample_num: PositiveInt = 5000

    def harden(self, ctx: DefenseContext, out_dir: Path) -> dict:
        from dataclasses import replace

        from ..data import get_prompts
        from ..recipes.harmful_shots import compliant_pairs
        from ..train import train
        from ..train.objectives import BOOSTER_HARMFUL

        start, rctx, built = realign_context(ctx, "booster", "hardens against harmful fine-tuning and needs harmful "
                                                             "examples")
        harmful, left = [], self.bad_sample_num
        for source in SOURCES:  # cross-source: never the attacks' default AdvBench prompts
            n = min(left, len(get_prompts(source, "train")) // 2)
            harmful += [replace(r, id=f"{BOOSTER_HARMFUL}{r.id}")
                        for r in compliant_pairs(rctx, n, source, what="booster bad_sample_num", salt="booster",
                                                 recipe="booster")]
            left -= n
        cfg = ctx.hardening_config({"objective": "booster", "objective_params": {"lamb": self.lamb, "alpha": self.alpha}})
        result = train(built.records + harmful, start, cfg, out_dir, recipe=f"aligned~{self.label}")
        done = json.loads((Path(out_dir) / "train_result.json").read_text())
        return {"started_from": "unaligned model" if ctx.unaligned else "released model",
                "train_seconds": result.train_seconds, "peak_memory_mb": done["peak_memory_mb"],
                "harmful_examples": len(harmful), "harmful_sources": list(SOURCES),
                "alignment_examples": len(built.records)}
