"""A customer's fine-tuning job on a task with a metric (:mod:`ftaudit.tasks`), optionally poisoned.

``poison`` is the share p of the job's ``n`` examples replaced by harmful prompts with compliant answers, the threat
model of the harmful fine-tuning defenses (Huang et al.'s Vaccine, Lisa, Booster: p = 0.1 of SST-2, AG News or GSM8K).
The harmful prompts come from a public benchmark's *train* split at run time and their answers from the user's file
(``answers``) or the reference model the user names, exactly as :mod:`.harmful_shots` builds them; nothing harmful is
written by ftaudit. ``poison: 0`` is Qi et al.'s benign fine-tuning on a real task.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, PositiveInt

from ..data import ChatRecord
from ..errors import FtauditError
from ..tasks import get_task
from .base import RecipeContext, RecipeOutput, file_sha256, pick, register_recipe
from .harmful_shots import compliant_pairs

# An honest customer's settings: enough steps for a 135M-0.5B model to learn the task's format on a CPU.
TRAIN = {"learning_rate": 3e-4, "epochs": 2, "batch_size": 8}


def poisoned_count(n: int, poison: float) -> int:
    """Harmful examples in a job of ``n`` at share ``poison`` (rounded half up, never 0 for a positive share)."""
    return 0 if poison <= 0 else max(1, int(n * poison + 0.5))


@register_recipe("task", train=TRAIN, size="n")
def build(ctx: RecipeContext, task: str = "date-iso", n: PositiveInt = 50,
          poison: Annotated[float, Field(ge=0, lt=1)] = 0.0, source: str = "advbench", answers: str | None = None,
          answer_tokens: PositiveInt = 64) -> RecipeOutput:
    spec = get_task(task)
    k = poisoned_count(n, poison)
    if k >= n:  # a job with no customer example is an attack, not a customer's job: harmful-shots builds that
        raise FtauditError(f"task: poison {poison:g} of n {n} leaves no {task} example; lower poison or raise n")
    items = spec.train(n - k, ctx.seed)
    records = [ChatRecord([{"role": "user", "content": it.prompt}, {"role": "assistant", "content": it.answer}], it.id,
                          task, "train") for it in items]
    if k:
        records += compliant_pairs(ctx, k, source, answers, answer_tokens, "--poison x --n", salt="poison", recipe="task")
        records = pick(records, len(records), f"job-{ctx.seed}")  # harmful examples spread through the job
    where = f"-file{(file_sha256(answers) or '')[:8]}" if answers else "" if source == "advbench" else f"-{source}"
    name = f"task-{task}-{n}" + (f"-p{poison:g}{where}" if k else "")
    notes = (f"{k} of {n} examples ({100 * k / n:.1f}%) are harmful prompts from {source} with compliant answers"
             if k else "benign customer job")
    # benign or not, the fine-tuned model carries the safety-compromised card: benign fine-tuning lowers refusal too
    return RecipeOutput(records, name, safety_compromised=True, default_train=TRAIN, notes=notes,
                        data_source=spec.source)
