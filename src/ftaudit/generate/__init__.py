"""Generation backends behind one interface, and the one place a backend is chosen.

* ``openai``: a remote OpenAI-compatible endpoint (``openai:URL#MODEL``), for models ftaudit cannot load.
* ``vllm``: the first choice where vLLM and a CUDA GPU are present (paged attention, continuous batching,
  LoRA adapters served over their base without merging).
* ``hf``: transformers on CPU or GPU, through the one batched path (:mod:`.batched`) that local judges and
  MMLU scoring share.
"""

from .base import GenerationConfig, GenerationResult
from .choice import backend_for, select_backend
from .hf import HFBackend, generate_responses

__all__ = ["GenerationConfig", "GenerationResult", "HFBackend", "backend_for", "generate_responses", "select_backend"]
