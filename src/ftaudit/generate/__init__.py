"""Generation backends behind one interface (HF transformers here; vLLM and remote APIs plug in the same way)."""

from .base import GenerationConfig, GenerationResult
from .hf import HFBackend, generate_responses

__all__ = ["GenerationConfig", "GenerationResult", "HFBackend", "generate_responses"]
