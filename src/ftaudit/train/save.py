"""Writing the trained weights of a launched (multi-process) run.

Under FSDP2 every parameter is a ``DTensor`` shard, so a plain ``save_pretrained`` would write shards or fail;
the full state dict is gathered with torch's distributed-checkpoint API on every rank and written by the main one.
(FSDP1 with LoRA failed here on an H100: its full-state-dict hook expects the frozen base weights that PEFT's
state dict leaves out. The shipped ``fsdp`` config is FSDP2 for that reason.)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FtauditError


def is_sharded(model) -> bool:
    """True when ``model``'s parameters are FSDP2 (``DTensor``) shards."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def save_sharded(model, out: Path, *, is_main: bool) -> None:
    """Gather the full state dict of an FSDP2-sharded ``model`` (a collective: call it on every rank) and write
    it with ``save_pretrained`` from the main rank; a PEFT model writes its adapter only."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if is_main:
        model.save_pretrained(str(out), state_dict=state)


def check_saved(model, out: Path) -> None:
    """Fail when the written weights miss a trainable tensor or hold a shard instead of the whole of one."""
    from safetensors import safe_open

    files = sorted(out.glob("adapter_model.safetensors")) or sorted(out.glob("model*.safetensors"))
    if not files:
        raise FtauditError(f"training finished but no weights were written to {out}; see its launch.log")
    shapes = {}
    for f in files:
        with safe_open(str(f), "pt") as st:
            shapes |= {k: tuple(st.get_slice(k).get_shape()) for k in st.keys()}
    shapes = {_plain(k): v for k, v in shapes.items()}
    for name, p in model.named_parameters():
        saved = shapes.get(_plain(name))
        shape = tuple(getattr(p, "ds_shape", p.shape))  # DeepSpeed ZeRO-3 keeps the whole shape in ds_shape
        if p.requires_grad and saved != shape:
            raise FtauditError(f"the saved weights of {out} lack the full trained tensor {name} "
                               f"(saved {saved}, trained {shape}); see its launch.log")


def _plain(name: str) -> str:
    """PEFT writes ``base_model.model.X.lora_A.weight`` for the parameter ``base_model.model.X.lora_A.default.weight``."""
    return name.replace(".default.", ".").removeprefix("base_model.model.")
