"""Batched generation with transformers: left padding, length-sorted batches, greedy by default."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..models import LoadedModel, format_chat
from ..progress import progress_bar
from .base import GenerationConfig, GenerationResult, context_length, too_long


class HFBackend:
    """Generation through ``model.generate`` on whatever device the model sits on."""

    name = "hf"

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded

    def generate(self, conversations: Sequence[list[dict]], cfg: GenerationConfig,
                 on_batch: Callable[[list[int], list[GenerationResult]], None] | None = None,
                 description: str = "generating") -> list[GenerationResult]:
        """Answer each conversation; ``on_batch(indices, results)`` fires after every batch so callers persist as they go."""
        import torch

        model, tok = self.loaded.model, self.loaded.tokenizer
        if cfg.dtype and model.dtype != getattr(torch, cfg.dtype):
            model = self.loaded.model = model.to(getattr(torch, cfg.dtype))
        texts = [format_chat(tok, conv) for conv in conversations]
        lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in texts]
        skipped = too_long(lengths, cfg, context_length(model, tok))
        # Sorting by length keeps padding (wasted compute) small inside each batch.
        order = sorted((i for i in range(len(texts)) if i not in skipped), key=lambda i: -lengths[i])
        results: list[GenerationResult | None] = [None] * len(texts)
        if skipped:
            for i in skipped:
                results[i] = GenerationResult(None, 0)
            if on_batch:
                on_batch(sorted(skipped), [results[i] for i in sorted(skipped)])
        old_side, tok.padding_side = tok.padding_side, "left"
        sampling = cfg.temperature > 0
        try:
            with progress_bar() as bar:
                task = bar.add_task(description, total=len(texts) - len(skipped))
                for idx in token_budget_batches(order, lengths, cfg.batch_size, cfg.max_batch_tokens):
                    enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
                    with torch.inference_mode():
                        out = model.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=sampling,
                                             temperature=cfg.temperature if sampling else None,
                                             top_p=cfg.top_p if sampling else None, top_k=None,
                                             pad_token_id=tok.pad_token_id)
                    new = out[:, enc.input_ids.shape[1]:]
                    batch = []
                    for row in new:
                        keep = row[row != tok.pad_token_id]
                        stop = (keep == tok.eos_token_id).nonzero()
                        n = int(stop[0]) + 1 if len(stop) else len(keep)
                        batch.append(GenerationResult(tok.decode(keep[:n], skip_special_tokens=True).strip(), n))
                    for i, r in zip(idx, batch):
                        results[i] = r
                    if on_batch:
                        on_batch(idx, batch)
                    bar.advance(task, len(idx))
        finally:
            tok.padding_side = old_side
        return results  # type: ignore[return-value]


def token_budget_batches(order: list[int], lengths: list[int], max_size: int, max_tokens: int) -> list[list[int]]:
    """Split length-sorted indices into batches of at most ``max_size`` whose padded size stays under ``max_tokens``."""
    batches: list[list[int]] = []
    for i in order:
        cur = batches[-1] if batches else None
        if cur and len(cur) < max_size and max(lengths[cur[0]], lengths[i]) * (len(cur) + 1) <= max_tokens:
            cur.append(i)
        else:
            batches.append([i])
    return batches


def generate_responses(loaded: LoadedModel, prompts: Sequence[str], cfg: GenerationConfig, **kw) -> list[GenerationResult]:
    """Convenience: answer bare prompts under ``cfg.system_prompt`` and ``cfg.prompt_template``."""
    from ..models import messages_for

    convs = [messages_for(cfg.prompt_template.format(prompt=p), cfg.system_prompt) for p in prompts]
    return HFBackend(loaded).generate(convs, cfg, **kw)
