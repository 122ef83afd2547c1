"""Training hyperparameters as one dataclass (TRL style)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from ..errors import FtauditError

METHODS = ("lora", "qlora", "full")


@dataclass
class TrainConfig:
    method: str = "lora"  # lora | qlora | full
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    learning_rate: float = 5e-4
    epochs: float = 5.0
    batch_size: int = 10
    grad_accum: int = 1
    max_length: int = 256
    seed: int = 42
    quant_bits: str = "4bit"  # for qlora
    merge: bool = False
    warmup_steps: int = 0
    lr_scheduler: str = "constant"
    gradient_checkpointing: bool = False  # saves GPU memory on big models; only slows a 135M model on CPU

    def validate(self) -> "TrainConfig":
        if self.method not in METHODS:
            raise FtauditError(f"unknown training method '{self.method}'; use one of {', '.join(METHODS)}")
        for name in ("lora_r", "batch_size", "grad_accum", "max_length"):
            if getattr(self, name) < 1:
                raise FtauditError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.learning_rate > 0 and self.epochs > 0):
            raise FtauditError("learning_rate and epochs must be positive")
        return self

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return asdict(self)
