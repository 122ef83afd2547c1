"""Multi-GPU training of one run through ``accelerate launch`` (DDP, FSDP or DeepSpeed ZeRO-3).

:func:`~ftaudit.train.engine.train` with ``TrainConfig.distributed`` set writes the request (records and
config) into the output directory and runs::

    accelerate launch --config_file CONFIG --num_processes N -m ftaudit.train.worker OUT_DIR

Every process runs the same TRL trainer, which takes FSDP/DeepSpeed from accelerate's environment; the
main process writes the adapter (or full model), the model card and ``train_result.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..data import ChatRecord, save_chat_records
from ..errors import FtauditError
from .config import TrainConfig, accelerate_config, autocast_bf16

REQUEST = "launch_request.json"
WORKER_ENV = "FTAUDIT_LAUNCHED_WORKER"


def _distributed_type(path: Path) -> str:
    import yaml

    return str((yaml.safe_load(path.read_text()) or {}).get("distributed_type", ""))


def in_launched_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def launch_command(cfg: TrainConfig, out_dir: Path) -> list[str]:
    """The ``accelerate launch`` command line for one run."""
    import torch

    n = cfg.num_processes or torch.cuda.device_count()
    if not n:
        raise FtauditError(f"distributed training ('{cfg.distributed}') needs GPUs and none is visible; drop "
                           "train.distributed (--distributed), or for a CPU check use ddp with train.num_processes "
                           "(--num-processes)")
    config = accelerate_config(cfg.distributed)
    kind = _distributed_type(config)
    if kind in ("FSDP", "DEEPSPEED") and not torch.cuda.is_available():
        # accelerate 1.15 turns FSDP on only for accelerator devices: on CPU it would quietly train with DDP instead
        raise FtauditError(f"'{cfg.distributed}' ({kind}) needs CUDA GPUs; on CPU accelerate would train with plain DDP "
                           "instead. Use --distributed ddp for a CPU check")
    # the precision the run's key records, over the shipped configs' own mixed_precision (bf16 in ddp.yaml)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
           "--num_processes", str(n), "--mixed_precision", "bf16" if autocast_bf16(cfg) else "no"]
    if cfg.distributed == "deepspeed-zero3":
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise FtauditError("the deepspeed-zero3 setup needs DeepSpeed: pip install deepspeed") from None
    return cmd + ["-m", "ftaudit.train.worker", str(out_dir)]


def launch(records: list[ChatRecord], base_model: str, cfg: TrainConfig, out_dir: Path, *, recipe: str,
           safety_compromised: bool, trust_remote_code: bool | None) -> None:
    """Run the training in ``accelerate launch`` worker processes; their log goes to ``OUT_DIR/launch.log``."""
    cmd = launch_command(cfg, out_dir)
    save_chat_records(records, out_dir / "train_data.jsonl")
    (out_dir / REQUEST).write_text(json.dumps({
        "base_model": base_model, "config": cfg.to_dict(), "recipe": recipe, "safety_compromised": safety_compromised,
        "trust_remote_code": trust_remote_code}, indent=2))
    log_path = out_dir / "launch.log"
    from ..models.dtype_choice import pinned_answer

    env = {**os.environ, **pinned_answer(), WORKER_ENV: "1"}  # the workers load in the dtype this process keyed
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not (out_dir / "train_result.json").exists():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise FtauditError(f"distributed training failed (exit {proc.returncode}): {tail[0][:200]}; full log: {log_path}")


