"""Generation with transformers for chat conversations, over the one batched path (:mod:`.batched`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import FtauditError
from ..models import LoadedModel, format_chat
from .base import GenerationConfig, GenerationResult, context_length, too_long
from .batched import generate_ids


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
        # the chat template already holds any BOS: no special tokens are added
        limit = context_length(model, tok)
        if limit is not None and cfg.max_new_tokens >= limit:  # no prompt could fit: refuse, never "all skipped"
            raise FtauditError(f"max_new_tokens {cfg.max_new_tokens} leaves no room for a prompt in the model's context of "
                               f"{limit} tokens; ask for fewer new tokens")
        ids = [tok(format_chat(tok, conv), add_special_tokens=False).input_ids for conv in conversations]
        skipped = too_long([len(i) for i in ids], cfg, limit)
        results: list[GenerationResult] = [GenerationResult(None, 0)] * len(ids)
        if skipped and on_batch:
            on_batch(sorted(skipped), [results[i] for i in sorted(skipped)])
        todo = [i for i in range(len(ids)) if i not in skipped]

        def finished(positions: list[int], new: list[list[int]]) -> None:
            batch = [GenerationResult(tok.decode(n, skip_special_tokens=True).strip(), len(n)) for n in new]
            for p, r in zip(positions, batch):
                results[todo[p]] = r
            if on_batch:
                on_batch([todo[p] for p in positions], batch)

        generate_ids(model, tok, [ids[i] for i in todo], max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                     top_p=cfg.top_p, batch_size=cfg.batch_size, max_batch_tokens=cfg.max_batch_tokens,
                     description=description, on_batch=finished)
        return results


def generate_responses(loaded: LoadedModel, prompts: Sequence[str], cfg: GenerationConfig, **kw) -> list[GenerationResult]:
    """Convenience: answer bare prompts under ``cfg.system_prompt`` and ``cfg.prompt_template``."""
    from ..models import messages_for

    convs = [messages_for(cfg.prompt_template.format(prompt=p), cfg.system_prompt) for p in prompts]
    return HFBackend(loaded).generate(convs, cfg, **kw)
