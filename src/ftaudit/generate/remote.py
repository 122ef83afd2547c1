"""Generation through an OpenAI-compatible endpoint, for models ftaudit cannot load (a provider's
fine-tuned model, a vLLM server). Location: ``openai:BASE_URL#MODEL``; key from ``FTAUDIT_REMOTE_API_KEY``
(or ``OPENAI_API_KEY``). ftaudit only *evaluates* remote models: it never sends them training data."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import FtauditError
from .base import GenerationConfig, GenerationResult

PREFIX = "openai:"


def is_remote(location: str) -> bool:
    return str(location).startswith(PREFIX)


def parse_remote(location: str) -> tuple[str, str]:
    base, sep, model = location[len(PREFIX):].partition("#")
    if not sep or not base or not model:
        raise FtauditError(f"malformed remote model '{location}'; write openai:BASE_URL#MODEL, e.g. openai:http://127.0.0.1:8000/v1#my-model")
    return base, model


class RemoteBackend:
    name = "openai"

    def __init__(self, location: str):
        from ..clients import ChatClient

        base, model = parse_remote(location)
        self.client = ChatClient(base, model, api_key_env="FTAUDIT_REMOTE_API_KEY", role="model")

    def generate(self, conversations: Sequence[list[dict]], cfg: GenerationConfig,
                 on_batch: Callable[[list[int], list[GenerationResult]], None] | None = None,
                 description: str = "generating") -> list[GenerationResult]:
        """Same contract as the HF backend; ``new_tokens`` counts whitespace-separated words (no tokenizer here)."""
        if cfg.dtype:
            raise FtauditError(f"generation dtype {cfg.dtype} applies to the local transformers backend only; unset it "
                               "for this backend")
        results: list[GenerationResult] = []
        step = cfg.batch_size or 32
        for start in range(0, len(conversations), step):
            chunk = list(conversations[start:start + step])
            texts = self.client.complete_many(chunk, description=description, temperature=cfg.temperature,
                                              max_tokens=cfg.max_new_tokens)
            batch = [GenerationResult(t.strip(), len(t.split())) for t in texts]
            if on_batch:
                on_batch(list(range(start, start + len(chunk))), batch)
            results += batch
        return results
