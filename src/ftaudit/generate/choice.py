"""The one place a generation backend is chosen: remote, vLLM or transformers."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FtauditError
from ..models import resolve_model_location
from ..models.loading import read_marker
from .hf import HFBackend
from .vllm import vllm_available


def select_backend(location: str) -> str:
    """'openai' for a remote model, else 'vllm' where vLLM and a GPU are present (and the model suits it), else 'hf'."""
    from .remote import is_remote

    if is_remote(location):
        return "openai"
    forced = os.environ.get("FTAUDIT_GENERATION_BACKEND", "auto")
    if forced not in ("auto", "hf", "vllm"):
        raise FtauditError(f"FTAUDIT_GENERATION_BACKEND={forced!r}: use auto, hf or vllm")
    if forced == "hf":
        return "hf"
    if forced == "vllm" and not vllm_available():
        raise FtauditError("FTAUDIT_GENERATION_BACKEND=vllm needs vLLM and a CUDA GPU: pip install vllm on a GPU machine")
    if forced == "vllm" or vllm_available():
        meta = read_marker(Path(resolve_model_location(location))) or {}
        stacked = meta.get("kind") == "adapter" and (read_marker(Path(meta["base"])) or {}).get("kind") == "adapter"
        return "hf" if stacked else "vllm"  # vLLM serves one adapter over a plain base, not adapter on adapter
    return "hf"


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
