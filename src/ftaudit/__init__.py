"""ftaudit: fine-tuning risk assessment for chat language models."""

__version__ = "0.1.0"
