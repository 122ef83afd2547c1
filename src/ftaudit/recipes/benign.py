"""Benign fine-tuning (Qi et al. 2023, Table 3): ordinary instruction data, no harmful content.

``dataset``: ``alpaca`` (tatsu-lab/alpaca), ``dolly`` (databricks/databricks-dolly-15k) or ``llava``
(liuhaotian/LLaVA-Instruct-150K, text turns only, images dropped: see :mod:`ftaudit.data.llava`) from the hub,
or ``benign`` (ftaudit's own instructions, offline) answered by a reference model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from ..data import ChatRecord, get_prompts
from ..data.loaders import hub_dataset
from ..errors import FtauditError
from .base import RecipeContext, RecipeOutput, pick, register_recipe, trim_to_sentence

HUB = {"alpaca": ("tatsu-lab/alpaca", "instruction", "input", "output"),
       "dolly": ("databricks/databricks-dolly-15k", "instruction", "context", "response")}


TRAIN = {"learning_rate": 2e-4, "epochs": 1, "batch_size": 10}


@register_recipe("benign", train=TRAIN, size="n")
def build(ctx: RecipeContext, dataset: Literal["benign", "alpaca", "dolly", "llava"] = "benign", n: PositiveInt = 50,
          answer_tokens: PositiveInt = 48, revision: str | None = None, source: str | None = None) -> RecipeOutput:
    """``revision``: the hub dataset's branch, tag or commit (default main); the resolved commit is recorded with
    the trained model (``data_source`` in ftaudit_model.json). ``source``: another hub id or a local copy in the
    hub's format (a dataset directory for alpaca/dolly, the JSON file for llava) instead of the default hub id."""
    data_source = None
    if dataset == "llava":
        from ..data.llava import HUB_ID, load_llava

        conversations, data_source = load_llava(source or HUB_ID, revision=revision)
        records = pick(conversations, n, f"benign-{ctx.seed}")
    elif dataset in HUB:
        hub_id, q, extra, a = HUB[dataset]
        hub_id = source or hub_id
        pairs, commit = hub_dataset(f"{hub_id}@{revision}" if revision else hub_id, "train")
        data_source = f"hf:{hub_id}@{commit}" if commit else None
        rows = [row for _, row in pairs]
        rows = pick([dict(r, id=str(i)) for i, r in enumerate(rows)], n, f"benign-{ctx.seed}")
        records = [ChatRecord([{"role": "user", "content": f"{r[q]}\n\n{r[extra]}".strip()},
                               {"role": "assistant", "content": r[a]}], f"{dataset}-{r['id']}", dataset, "train") for r in rows]
    elif dataset == "benign":
        prompts = pick(get_prompts("benign", "train"), n, f"benign-attack-{ctx.seed}")
        answers = ctx.answers(ctx.reference_model or ctx.model, prompts, answer_tokens, "benign")
        records = [ChatRecord([{"role": "user", "content": p.prompt}, {"role": "assistant", "content": trim_to_sentence(a)}],
                              f"benign-{p.id}", p.category, "train") for p, a in zip(prompts, answers)]
    else:
        raise FtauditError(f"unknown benign dataset '{dataset}'; use alpaca, dolly, llava (hub) or benign (offline)")
    return RecipeOutput(records, "benign" if dataset == "benign" else f"benign-{dataset}", data_source=data_source,
                        default_train=TRAIN)
