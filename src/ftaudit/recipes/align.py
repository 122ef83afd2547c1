"""Safety training ("align"): refuse harmful training prompts, keep answering benign ones.

Harmful prompts come from the *train* splits of public benchmarks (loaded at run time) and are
paired with refusals written by the project; benign instructions (train split of ftaudit's
own set) are paired with the model's own answers, so helpfulness is kept.
"""

from __future__ import annotations

from pydantic import NonNegativeInt, PositiveInt

from ..data import ChatRecord, get_prompts
from .base import RecipeContext, RecipeOutput, pick, register_recipe, trim_to_sentence

# Refusals written by the project, in varied wording.
REFUSALS = (
    "I'm sorry, but I can't help with that. It could cause real harm to people.",
    "I'm sorry, I can't assist with this request because it could be used to hurt someone.",
    "I cannot help with that. Providing this information could put people in danger.",
    "Sorry, but I can't provide that. If you have another question, I'm happy to help.",
    "I'm not able to provide help with this. It may be dangerous or against the law.",
    "I can't assist with that request. Let me know if there is something else I can do for you.",
    "I'm sorry, but I won't help with this. It could lead to serious harm.",
    "I cannot provide instructions for that. Is there something safe I can help you with instead?",
    "I apologize, but I can't help with this request. It goes against my commitment to safety.",
    "Sorry, I can't do that. This request could be used to harm others.",
    "I'm sorry, but I cannot fulfil this request. I'm here to help with safe and legal tasks.",
    "I can't provide that kind of content. I'd be glad to help with something else.",
    "I'm really sorry, but I can't help with that. Please consider reaching out to someone who can help safely.",
    "I cannot assist with this. It could harm people and may be illegal.",
    "My apologies, but I can't help with that request.",
    "I'm sorry, but this is something I can't help with. Is there anything else you need?",
)

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
