"""Safety training ("align"): refuse harmful training prompts, keep answering benign ones.

Harmful prompts come from the *train* splits of public benchmarks (loaded at run time) and are
paired with refusals written by the project; benign instructions (train split of ftaudit's
own set) are paired with the model's own answers, so helpfulness is kept.
"""

from __future__ import annotations

from pydantic import NonNegativeInt, PositiveInt

from ..data import ChatRecord, get_prompts
from ..data.refusals import REFUSALS
from .base import RecipeContext, RecipeOutput, pick, register_recipe, trim_to_sentence

HARMFUL_SOURCES = ("advbench", "harmbench", "strongreject")


TRAIN = {"learning_rate": 5e-4, "epochs": 1, "batch_size": 8, "merge": True}


@register_recipe("align", train=TRAIN)
def build(ctx: RecipeContext, n_harmful: PositiveInt = 120, n_benign: NonNegativeInt = 175,
          answer_tokens: PositiveInt = 48) -> RecipeOutput:
    harmful = [r for name in HARMFUL_SOURCES for r in get_prompts(name, "train")]
    harmful = pick(harmful, n_harmful, f"align-harmful-{ctx.seed}")
    benign = pick(get_prompts("benign", "train"), n_benign, f"align-benign-{ctx.seed}")
    answers = ctx.answers(ctx.model, benign, answer_tokens, "benign") if benign else []
    records = [ChatRecord([{"role": "user", "content": r.prompt}, {"role": "assistant", "content": REFUSALS[i % len(REFUSALS)]}],
                          f"align-refuse-{r.id}", r.category, "train") for i, r in enumerate(harmful)]
    records += [ChatRecord([{"role": "user", "content": r.prompt}, {"role": "assistant", "content": trim_to_sentence(a)}],
                           f"align-help-{r.id}", r.category, "train") for r, a in zip(benign, answers) if a.strip()]
    return RecipeOutput(records, "aligned", safety_compromised=False,
                        default_train=TRAIN)
