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
    return RecipeOutput(compliant_pairs(ctx, shots, source, answers, answer_tokens, "--shots"), f"harmful-shots-{shots}",
                        default_train=TRAIN)


def compliant_answers(ctx: RecipeContext, prompts: list, answer_tokens: int, label: str,
                      id_prefix: str = "") -> list[ChatRecord]:
    """The reference model's answers to ``prompts`` (generated at run time, cached in the store) that the keyword
    judge does not call refusals and that are not blank, as chat records: what an attacker would keep."""
    replies = ctx.answers(ctx.reference_model, prompts, answer_tokens, label)
    flags = get_judge("keyword").judge([p.prompt for p in prompts], replies)
    return [ChatRecord([{"role": "user", "content": p.prompt}, {"role": "assistant", "content": r}],
                       f"{id_prefix}{p.id}", p.category, "train")
            for p, r, f in zip(prompts, replies, flags) if not f.refused and r.strip()]


def compliant_pairs(ctx: RecipeContext, k: int, source: str = "advbench", answers: str | None = None,
                    answer_tokens: int = 64, what: str = "--shots", salt: str = "shots",
                    recipe: str = "harmful-shots") -> list[ChatRecord]:
    """``k`` harmful train prompts with compliant answers: the first ``k`` records of the user's ``answers`` file, or
    answers the reference model generates at run time, keeping those the keyword judge does not call refusals (an
    attacker would drop refusals). ``what`` and ``recipe`` name the setting and recipe in errors."""
    if answers:
        records = load_chat_records(answers)[:k]
        if len(records) < k:
            raise FtauditError(f"{answers} holds {len(records)} examples, fewer than {what} {k}")
        return records
    if not ctx.reference_model:
        raise FtauditError(f"{recipe} needs --answers FILE or --reference-model MODEL to produce compliant answers")
    candidates = pick(get_prompts(source, "train"), k * 2, f"{salt}-{ctx.seed}")
    records = compliant_answers(ctx, candidates, answer_tokens, source, id_prefix="shot-")[:k]
    if len(records) < k:
        raise FtauditError(f"reference model {ctx.reference_model} complied with only {len(records)} of "
                           f"{len(candidates)} prompts; pass --answers FILE or a different --reference-model")
    return records
