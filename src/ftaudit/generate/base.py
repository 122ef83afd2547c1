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
    temperature: float = 0.0
    top_p: float = 1.0
    system_prompt: str | None = None
    prompt_template: str = "{prompt}"

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class GenerationResult:
    response: str
    new_tokens: int
