"""``vaccine``: Huang et al. 2024, "Vaccine: Perturbation-aware Alignment for Large Language Models against Harmful
Fine-tuning" (NeurIPS 2024, arXiv:2402.01109). An alignment-time defense: the publisher safety-trains with the
perturbation-aware objective (:mod:`ftaudit.train.objectives`, rho = 2) instead of plain SFT.

Here it runs the ``align`` recipe (the same refusals and benign answers, the same settings and seed as the
undefended ``aligned`` model) with Vaccine's objective, from the model before safety training when the run aligns
one, else on top of the released model. In the second case the comparison with ``none`` also carries the extra
safety data; the report says which model it started from. Like the paper, alignment is LoRA (merged afterwards).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import PositiveFloat

from .base import Defense, DefenseContext, register_defense


@register_defense("vaccine")
@dataclass
class Vaccine(Defense):
    stage: ClassVar[str] = "alignment"
    rho: PositiveFloat = 2.0

    def harden(self, ctx: DefenseContext, out_dir: Path) -> dict:
        from ..fine_tune import aligned_model

        start = ctx.unaligned or ctx.initial
        aligned_model(ctx.store, start, out_dir, params=ctx.align_params, seed=ctx.seed, name=f"defense:{self.label}",
                      overrides={**ctx.train, "objective": "vaccine", "objective_params": {"rho": self.rho}})
        result = json.loads((Path(out_dir) / "train_result.json").read_text())
        return {"started_from": "unaligned model" if ctx.unaligned else "released model",
                "train_seconds": result["train_seconds"], "peak_memory_mb": result["peak_memory_mb"]}
