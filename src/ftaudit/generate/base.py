"""What every generation backend takes and returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from ..errors import FtauditError

GENERATION_DTYPES = (None, "auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class GenerationConfig:
    """Greedy decoding by default, as in both studies."""

    max_new_tokens: int = 64
    # Speed only, not identity. None: the batched path's choice (:func:`.batched.batch_limits`): on CPU 40 prompts
    # and 16,384 padded tokens; on CUDA 256 prompts and as many tokens as the KV cache fits in free memory.
    batch_size: int | None = None
    max_batch_tokens: int | None = None  # cap on batch x (longest prompt + max_new_tokens)
    temperature: float = 0.0
    top_p: float = 1.0
    system_prompt: str | None = None
    prompt_template: str = "{prompt}"
    # Compute dtype of local (transformers) generation, e.g. "bfloat16": 2.4x faster than float32 for the 0.5B
    # packaged model on an AVX512-BF16 CPU, with slightly different greedy outputs, so it is part of the identity.
    # None keeps the weights' dtype (and the key of configs made before this field existed).
    dtype: str | None = None
    # The engine that generates (hf, vllm, openai): set by the evaluation stage, part of the identity (two engines'
    # greedy answers differ); None keeps the key of configs made before this field existed.
    backend: str | None = None

    def __post_init__(self):
        if self.dtype not in GENERATION_DTYPES:
            raise FtauditError(f"unknown generation dtype '{self.dtype}'; use one of auto, float32, bfloat16, float16")

    def key(self) -> str:
        """Identity of the decoding settings; batching does not change greedy outputs, so it is left out. "auto" is
        a request, not a dtype: it is resolved (:func:`ftaudit.generate.cached.cached_generate`) before anything is keyed."""
        if self.dtype == "auto":
            raise ValueError("GenerationConfig.key(): resolve dtype 'auto' first (models.dtype_choice)")
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def identity(self) -> dict:
        """The settings the key hashes, readable (stored beside each run's generations)."""
        return {k: v for k, v in asdict(self).items() if k not in ("batch_size", "max_batch_tokens")
                and not (k in ("dtype", "backend") and v is None)}


@dataclass
class GenerationResult:
    """``response`` is None when the prompt was not generated: it does not fit the model's context
    (prompt tokens + max_new_tokens > context length). Such prompts are skipped and counted, never truncated."""

    response: str | None
    new_tokens: int


POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def config_positions(config) -> int | None:
    """The most positions a model config allows: a ``PretrainedConfig`` through transformers' own
    ``get_text_config()`` (a composite model's text part, whatever it is called), or a raw ``config.json`` dict (its
    ``text_config`` when the top level does not say) where transformers cannot build the config."""
    if config is None:
        return None
    if isinstance(config, dict):
        values = [config.get(k) for k in POSITION_KEYS]
        nested = config.get("text_config")
    else:
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        values = [getattr(text, k, None) for k in POSITION_KEYS]
        nested = None
    found = next((v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0), None)
    return found if found is not None else config_positions(nested)


def tokenizer_positions(value) -> int | None:
    """A tokenizer's ``model_max_length`` when it is a real limit, not transformers' "unknown" sentinel."""
    from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < VERY_LARGE_INTEGER else None


def context_length(model, tokenizer) -> int | None:
    """The most positions ``model`` takes (its config, see :func:`config_positions`, else the tokenizer's
    ``model_max_length``); None when neither says."""
    return config_positions(getattr(model, "config", None)) or tokenizer_positions(getattr(tokenizer, "model_max_length", None))


def too_long(lengths: list[int], cfg: GenerationConfig, limit: int | None) -> set[int]:
    """Indices whose prompt plus ``cfg.max_new_tokens`` exceeds ``limit`` positions."""
    return set() if limit is None else {i for i, n in enumerate(lengths) if n + cfg.max_new_tokens > limit}
