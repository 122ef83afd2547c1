"""Model loading, GGUF conversion and chat formatting."""

from .chat import format_chat, messages_for
from .loading import MODELS, LoadedModel, check_model_location, load_model, model_fingerprint, resolve_model_location

__all__ = ["MODELS", "LoadedModel", "check_model_location", "format_chat", "load_model", "messages_for", "model_fingerprint", "resolve_model_location"]
