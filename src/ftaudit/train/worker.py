"""The entry point of every process ``accelerate launch`` starts (``python -m ftaudit.train.worker OUT_DIR``): it
reads the request :func:`ftaudit.train.launch.launch` wrote and trains; the engine lets the main process write the
outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..data import load_chat_records
from .config import TrainConfig
from .engine import train
from .launch import REQUEST


def launched_records(path: Path) -> list:
    """The records :func:`ftaudit.train.launch.launch` saved, with their ``meta`` (an answer's untrained opening),
    which the loader leaves out of a customer's file but ftaudit's own file carries."""
    records = load_chat_records(path)
    metas = [json.loads(line).get("meta") or {} for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r, meta in zip(records, metas, strict=True):
        r.meta = meta
    return records


def main(out_dir: str) -> None:
    """Worker entry point: every launched process trains; the engine lets the main process write outputs."""
    out = Path(out_dir)
    req = json.loads((out / REQUEST).read_text())
    train(launched_records(out / "train_data.jsonl"), req["base_model"], TrainConfig(**req["config"]), out,
          recipe=req["recipe"], safety_compromised=req["safety_compromised"], trust_remote_code=req["trust_remote_code"])


if __name__ == "__main__":
    main(sys.argv[1])
