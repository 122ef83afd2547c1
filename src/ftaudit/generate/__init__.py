"""Generation backends behind one interface, and the one place a backend is chosen.

* ``openai``: a remote OpenAI-compatible endpoint (``openai:URL#MODEL``), for models ftaudit cannot load.
* ``vllm``: the first choice where vLLM and a CUDA GPU are present (paged attention, continuous batching,
  LoRA adapters served over their base without merging).
* ``hf``: transformers on CPU or GPU, through the one batched path (:mod:`.batched`) that local judges and
  MMLU scoring share.
"""

from .base import GenerationConfig, GenerationResult
from .hf import HFBackend, generate_responses
from .vllm import select_backend


def backend_for(location: str, load=None, kind: str | None = None):
    """The backend that generates for the model at ``location``: remote, vLLM or transformers. ``load`` (no
    arguments, returns a :class:`~ftaudit.models.LoadedModel`) gives the transformers backend its model; by default
    :func:`~ftaudit.models.load_model` of ``location``. ``kind``: what :func:`select_backend` already chose."""
    kind = kind or select_backend(location)
    if kind == "openai":
        from .remote import RemoteBackend

        return RemoteBackend(location)
    if kind == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(location)
    if load is None:
        from ..models import load_model

        return HFBackend(load_model(location))
    return HFBackend(load())


__all__ = ["GenerationConfig", "GenerationResult", "HFBackend", "backend_for", "generate_responses", "select_backend"]
