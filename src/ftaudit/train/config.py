"""Training hyperparameters as one dataclass (TRL style)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import FtauditError

METHODS = ("lora", "qlora", "full")
OPTIONAL_KEYS = ("distributed", "num_processes", "checkpoint_steps", "objective", "objective_params", "dtype",
                 "padding_free", "batch_tokens", "mixed_precision")
TRAIN_DTYPES = (None, "float32", "bfloat16", "float16")
MIXED_PRECISIONS = (None, "bf16", "auto")


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
    # Multi-GPU training of this one run through `accelerate launch`: a shipped config (ddp, fsdp,
    # deepspeed-zero3) or the path of an accelerate config file; num_processes defaults to every visible GPU.
    distributed: str | None = None
    num_processes: int | None = None
    # Save a checkpoint every N optimizer steps; a killed run with the same inputs then resumes from the last one
    # instead of restarting (what a multi-hour 70B run needs). None: no checkpoints (short runs restart).
    checkpoint_steps: int | None = None
    # The training loss: None (plain SFT), "vaccine" or "constrained-sft" (see train.objectives); a defense sets it.
    objective: str | None = None
    objective_params: dict | None = None
    # Weights' dtype while training: None loads the checkpoint's own (float32 for the packaged models), or bfloat16
    # on a CUDA GPU. "bfloat16" on an AVX512-BF16 CPU is faster, and it is a different run (part of the key).
    dtype: str | None = None
    # Speed (see train.speed): no padding in a batch, same examples and steps (plain SFT only) ...
    padding_free: bool | None = None
    # ... or a token budget per step: examples packed into rows of max_length, batch_tokens // max_length rows
    batch_tokens: int | None = None
    # Mixed precision: "bf16" computes the forward and backward passes under torch.autocast in bfloat16 while the
    # weights, the LoRA adapter and the optimizer stay in their own dtype (float32 for the packaged models): the
    # trainer's ``bf16=True``, which a CUDA GPU that runs bf16 natively gets anyway. On an AVX512-BF16 CPU it trained
    # SmolLM2-135M 1.29x faster than float32 at batch 4 (bench/throughput.py, docs/speed.md). "auto" is "bf16" where
    # this machine runs bfloat16
    # natively (models.dtype_choice) and None elsewhere; it is resolved when the config is built, so a run's key
    # records what it computed in, never "auto". None: float32 on a CPU.
    mixed_precision: str | None = None

    def validate(self) -> "TrainConfig":
        if self.method not in METHODS:
            raise FtauditError(f"unknown training method '{self.method}'; use one of {', '.join(METHODS)}")
        for name in ("lora_r", "batch_size", "grad_accum", "max_length"):
            if getattr(self, name) < 1:
                raise FtauditError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.learning_rate > 0 and self.epochs > 0):
            raise FtauditError("learning_rate and epochs must be positive")
        if self.dtype not in TRAIN_DTYPES:
            raise FtauditError(f"unknown training dtype '{self.dtype}'; use float32, bfloat16 or float16")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise FtauditError(f"unknown mixed_precision '{self.mixed_precision}'; use bf16 or auto")
        self.mixed_precision = resolve_mixed_precision(self.mixed_precision)  # the key records what ran, never "auto"
        if self.batch_tokens is not None and self.batch_tokens < self.max_length:
            raise FtauditError(f"batch_tokens ({self.batch_tokens}) must be at least max_length ({self.max_length}): "
                               "a step holds batch_tokens // max_length packed rows")
        if (self.padding_free or self.batch_tokens) and self.objective not in (None, "sft"):
            raise FtauditError(f"padding_free and batch_tokens work with plain SFT only, not objective {self.objective}")
        if self.objective in ("lisa", "booster") and (self.grad_accum > 1 or self.distributed or self.checkpoint_steps):
            # both count and switch per micro-batch, draw their extra batches outside accelerate, and keep state a
            # checkpoint does not hold: one process, no accumulation, no resume
            raise FtauditError(f"objective {self.objective} runs in one process without gradient accumulation or "
                               "checkpoints (grad_accum 1, no distributed, no checkpoint_steps)")
        if self.checkpoint_steps is not None and self.checkpoint_steps < 1:
            raise FtauditError(f"checkpoint_steps must be at least 1, got {self.checkpoint_steps}")
        if self.num_processes is not None and self.num_processes < 1:
            raise FtauditError(f"num_processes must be at least 1, got {self.num_processes}")
        if self.objective is not None or self.objective_params:
            from .objectives import objective_params

            objective_params(self.objective, self.objective_params)  # an unknown objective or parameter fails here
        if self.distributed:
            accelerate_config(self.distributed)  # an unknown name or missing file fails here, before any work
        return self

    @classmethod
    def from_values(cls, values: dict) -> "TrainConfig":
        """Build from a dict (spec, CLI, saved request): unknown keys, wrong types (``epochs: five``) and bad
        ranges fail with one line naming the option."""
        from pydantic import TypeAdapter, ValidationError

        from ..errors import validation_message

        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise FtauditError(f"unknown training option(s) {', '.join(sorted(unknown))}; "
                               f"known: {', '.join(f.name for f in fields(cls))}")
        try:
            cfg = TypeAdapter(cls).validate_python(values)
        except ValidationError as exc:
            raise FtauditError(validation_message(exc)) from None
        return cfg.validate()

    def key(self) -> str:
        # options left at None are omitted, so adding an option keeps earlier runs' keys (and their resume)
        values = {k: v for k, v in asdict(self).items() if not (k in OPTIONAL_KEYS and v is None)}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_mixed_precision(requested: str | None) -> str | None:
    """``"auto"`` as this machine resolves it: ``"bf16"`` where it runs bfloat16 natively (the measured check of
    :mod:`ftaudit.models.dtype_choice`, said once with its reason), else None (float32 on a CPU: on an AVX2-only
    processor emulated bfloat16 is many times slower). ``"bf16"`` is honoured, with one warning line where this processor
    emulates bfloat16. Anything else is returned as given."""
    if requested not in ("auto", "bf16"):
        return requested
    from ..models.dtype_choice import resolve_dtype

    if requested == "bf16":
        resolve_dtype("bfloat16", "training mixed precision")  # only to say so where it is emulated
        return requested
    return "bf16" if resolve_dtype("auto", "training mixed precision") == "bfloat16" else None


def autocast_bf16(cfg: TrainConfig) -> bool:
    """Whether a run's passes compute under bfloat16 autocast: asked (``mixed_precision: bf16``), or on a CUDA GPU
    that runs bfloat16 natively (the trainer's default there). The trainer, the ``accelerate launch`` line and the run
    fingerprint all read this one answer."""
    import torch

    return cfg.mixed_precision == "bf16" or (torch.cuda.is_available()
                                             and torch.cuda.is_bf16_supported(including_emulation=False))


CONFIG_DIR = Path(__file__).parent / "accelerate"


SHIPPED = {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}  # ddp, fsdp, deepspeed-zero3


def accelerate_config(name_or_path: str) -> Path:
    """A shipped accelerate config by name, or a config file's path."""
    if name_or_path in SHIPPED:
        return SHIPPED[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise FtauditError(f"unknown distributed setup '{name_or_path}': use one of {', '.join(SHIPPED)} "
                           "or the path of an accelerate config file")
    return path
