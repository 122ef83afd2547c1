"""What every generation backend takes and returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GenerationConfig:
    """Greedy decoding by default, as in both studies."""

    max_new_tokens: int = 64
    batch_size: int = 32
    max_batch_tokens: int = 4096  # cap on batch x longest prompt, so one long prompt doesn't pad a big batch
    temperature: float = 0.0
    top_p: float = 1.0
    system_prompt: str | None = None
    prompt_template: str = "{prompt}"

    def key(self) -> str:
        """Identity of the decoding settings; batching does not change greedy outputs, so it is left out."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("batch_size", "max_batch_tokens")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class GenerationResult:
    response: str
    new_tokens: int
