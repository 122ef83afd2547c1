"""Model loading, GGUF conversion and chat formatting."""

from .chat import format_chat, messages_for
from .loading import MODELS, LoadedModel, load_model, model_fingerprint, resolve_model_location

__all__ = ["MODELS", "LoadedModel", "format_chat", "load_model", "messages_for", "model_fingerprint", "resolve_model_location"]
