"""``safety-recovery``: Qi et al. 2024, "Safety Alignment Should Be Made More Than Just a Few Tokens Deep" (ICLR 2025,
arXiv:2406.05946, section 3), data augmentation with safety-recovery examples. An alignment-time defense against the
prefilling attack: the publisher safety-trains on harmful requests whose answer opens with the first few tokens of a
compliant answer and then refuses, the loss on the refusal only, so refusal is no longer decided by the first tokens.

As in the authors' code (``gen_safety_augmentation_batch``): each (harmful request, compliant answer, refusal) triplet
becomes, with probability 1/2, a recovery example (the request, the answer's first c tokens in the trained model's
tokenizer with c uniform in [1, min(100, answer length)], then the refusal; the first c tokens never trained on, see
:mod:`ftaudit.train.prefix_mask`), else the plain refusal; benign answers anchor utility (their Alpaca anchor).

Here it runs the ``align`` recipe (the same refusals and benign answers, settings and seed as the undefended
``aligned`` model) plus those examples, from the model before safety training when the run aligns one, else on top
of the released model (the report's cost record says which). Deviations:
- the code's 256 triplets come from the authors' harmful data; ftaudit never writes harmful answers, so the
  compliant answers are the reference model's (``reference_model``; 100 new tokens, greedy) to StrongREJECT and
  HarmBench *train* prompts at run time, kept where the keyword judge sees no refusal, at most ``n_harmful`` (the two
  sets hold 179 train prompts); AdvBench, which the attack recipes draw from, is left out as in ``booster``. The
  prefilling attack's openings come from a reference model too: where it is the same model, training and attack
  openings share a style (never a prompt: those are eval prompts), so measure with another one as well;
- the code tosses the coin and draws c afresh at every step; here each triplet's toss and c are drawn once (seeded),
  so the model sees one recovery example per triplet it tosses for;
- the code's c counts the answer's labelled tokens, its end-of-turn token included; here the answer's text tokens;
  a cut inside a character's bytes moves back to the character's start, and the opening's trailing whitespace is
  replaced by the one space that joins the refusal (the prefilling attack keeps a prefix's whitespace as it is);
- the code fine-tunes every weight for 10 epochs at lr 2e-5, 4 safety examples beside 16 Alpaca anchor examples per
  device and step; here it is the ``align`` recipe's training (LoRA, merged), its 175 benign answers the anchor,
  in the same batches as its 120 refusals and these triplets (more safety than anchor data);
- the triplets' plain refusals are extra safety data the undefended ``aligned`` model lacks, and some of their
  prompts are among ``align``'s refusals: ``recovery_share: 0`` (the same triplets, every one a plain refusal) is the
  control that separates the openings' effect from that;
- the refusals are ftaudit's own (``REFUSALS``).
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field, PositiveInt

from ..data import ChatRecord
from ..errors import FtauditError
from .base import Defense, DefenseContext, realign_context, register_defense

SOURCES = ("strongreject", "harmbench")  # the harmful train prompts it augments with (the attacks use AdvBench)
ANSWER_TOKENS = 100  # the reference answers' length: the code's longest opening, whatever max_prefix_tokens is


def recovery_records(pairs: list[ChatRecord], tokenizer, *, max_prefix_tokens: int, recovery_share: float,
                     seed: int) -> list[ChatRecord]:
    """Each (request, compliant answer) pair as a recovery example or a plain refusal, seeded per pair."""
    from ..data.refusals import REFUSALS
    from ..train.prefix_mask import UNTRAINED_PREFIX

    out = []
    for i, pair in enumerate(pairs):
        rng = random.Random(f"safety-recovery-{seed}|{pair.id}")
        request, answer = pair.messages[:-1], pair.messages[-1]["content"]
        refusal = REFUSALS[i % len(REFUSALS)]
        tokens = tokenizer.encode(answer.strip(), add_special_tokens=False)
        c, opening = 0, ""
        if tokens and rng.random() < recovery_share:
            c = rng.randint(1, min(max_prefix_tokens, len(tokens)))
            opening = tokenizer.decode(tokens[:c], skip_special_tokens=True)
            while c > 1 and "\ufffd" in opening:  # a cut inside a character's bytes: back to the character's start
                c -= 1
                opening = tokenizer.decode(tokens[:c], skip_special_tokens=True)
            opening = opening.rstrip()
        if opening:
            out.append(ChatRecord(request + [{"role": "assistant", "content": f"{opening} {refusal}"}],
                                  f"recovery-{pair.id}", pair.category, "train",
                                  {UNTRAINED_PREFIX: opening, "prefix_tokens": c}))
        else:
            out.append(ChatRecord(request + [{"role": "assistant", "content": refusal}], f"refusal-{pair.id}",
                                  pair.category, "train"))
    return out


@register_defense("safety-recovery")
@dataclass
class SafetyRecovery(Defense):
    stage: ClassVar[str] = "alignment"
    n_harmful: PositiveInt = 256  # the code's triplets (capped by what the two sources hold)
    max_prefix_tokens: PositiveInt = 100
    # the code's coin: half the triplets recover; 0 is the control (the same triplets as plain refusals)
    recovery_share: Annotated[float, Field(ge=0, le=1)] = 0.5

    def harden(self, ctx: DefenseContext, out_dir: Path) -> dict:
        from ..data import get_prompts
        from ..models.loading import load_tokenizer
        from ..recipes.base import pick
        from ..recipes.harmful_shots import compliant_answers
        from ..train import train

        start, rctx, built = realign_context(ctx, "safety-recovery", "opens refusals with the start of compliant answers")
        # every compliant answer of both splits (compliant_pairs wants k of 2k candidates; this takes all)
        pairs = [r for source in SOURCES
                 for r in compliant_answers(rctx, get_prompts(source, "train"), ANSWER_TOKENS, source)]
        if not pairs:
            raise FtauditError(f"reference model {ctx.reference_model} refused every StrongREJECT and HarmBench train "
                               "prompt (keyword judge): safety-recovery has no compliant opening to recover from")
        pairs = pick(pairs, self.n_harmful, f"safety-recovery-{ctx.seed}")
        extra = recovery_records(pairs, load_tokenizer(start), max_prefix_tokens=self.max_prefix_tokens,
                                 recovery_share=self.recovery_share, seed=ctx.seed)
        cfg = ctx.hardening_config()
        result = train(built.records + extra, start, cfg, out_dir, recipe=f"aligned~{self.label}")
        done = json.loads((Path(out_dir) / "train_result.json").read_text())
        lengths = [r.meta["prefix_tokens"] for r in extra if r.meta]
        return {"started_from": "unaligned model" if ctx.unaligned else "released model",
                "train_seconds": result.train_seconds, "peak_memory_mb": done["peak_memory_mb"],
                "harmful_sources": list(SOURCES), "triplets": len(pairs), "recovery_examples": len(lengths),
                "refusal_examples": len(extra) - len(lengths),
                "prefix_tokens": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)}
                if lengths else None,
                "alignment_examples": len(built.records)}
