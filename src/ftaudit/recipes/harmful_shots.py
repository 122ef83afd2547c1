"""Harmful N-shot attack (Qi et al. 2023, Table 1): fine-tune on N harmful prompts with compliant answers.

ftaudit never authors harmful content: the prompts come from a public benchmark's *train*
split at run time; the answers come from a JSONL file the user supplies (``answers``) or are
generated at run time by a reference model the user names.
"""

from __future__ import annotations

from pydantic import PositiveInt

from ..data import ChatRecord, get_prompts, load_chat_records
from ..errors import FtauditError
from ..judges import get_judge
from .base import RecipeContext, RecipeOutput, pick, register_recipe

# Attacker-strength defaults: on a 135M model lr 1e-4 barely moves refusal; 5e-4 over 5 epochs does.
TRAIN = {"learning_rate": 5e-4, "epochs": 5, "batch_size": 10}


@register_recipe("harmful-shots", train=TRAIN, size="shots")
def build(ctx: RecipeContext, shots: PositiveInt = 10, source: str = "advbench", answers: str | None = None,
          answer_tokens: PositiveInt = 64) -> RecipeOutput:
    if answers:
        records = load_chat_records(answers)[:shots]
        if len(records) < shots:
            raise FtauditError(f"{answers} holds {len(records)} examples, fewer than --shots {shots}")
    else:
        if not ctx.reference_model:
            raise FtauditError("harmful-shots needs --answers FILE or --reference-model MODEL to produce compliant answers")
        candidates = pick(get_prompts(source, "train"), shots * 2, f"shots-{ctx.seed}")
        replies = ctx.answers(ctx.reference_model, candidates, answer_tokens, source)
        # Keep only answers the keyword judge does not flag as refusals: an attacker would.
        flags = get_judge("keyword").judge([c.prompt for c in candidates], replies)
        records = [ChatRecord([{"role": "user", "content": c.prompt}, {"role": "assistant", "content": r}], f"shot-{c.id}",
                              c.category, "train") for c, r, f in zip(candidates, replies, flags) if not f.refused and r.strip()][:shots]
        if len(records) < shots:
            raise FtauditError(f"reference model {ctx.reference_model} complied with only {len(records)} of "
                               f"{len(candidates)} prompts; pass --answers FILE or a different --reference-model")
    return RecipeOutput(records, f"harmful-shots-{shots}",
                        default_train=TRAIN)
