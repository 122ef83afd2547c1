"""Fine-tuning engine (TRL SFTTrainer + PEFT) and cost accounting."""

from .config import TrainConfig
from .engine import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
