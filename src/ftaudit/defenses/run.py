"""``ftaudit defend``: apply one defense outside a grid and write what it defends, with a cost record.

  alignment    harden MODEL (OUT is the hardened model)
  data         screen --data (OUT/train_data.jsonl is what survives; OUT/screening.json says what was dropped)
  fine-tuning  train MODEL on --data under the defense (OUT is the trained model)
  post-hoc     repair --adapter, a LoRA adapter trained from MODEL (OUT is the repaired adapter)

Every stage writes ``OUT/defense.json``: the defense, its stage and parameters, seconds and peak memory.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from ..atomic import atomic_write_text
from ..data import load_chat_records, save_chat_records
from ..errors import FtauditError
from ..store import Store
from .base import DefenseContext, get_defense

COST_FILE = "defense.json"


def defend(name: str, model: str, out: str | Path, *, params: dict | None = None, data: str | Path | None = None,
           adapter: str | Path | None = None, unaligned: str | None = None, align_params: dict | None = None,
           train: dict | None = None, seed: int = 0, reference_model: str | None = None) -> dict:
    """Apply defense ``name`` (see module docstring) and return its cost record (also in ``OUT/defense.json``)."""
    from ..train.engine import _peak_memory_mb, _reset_peak_memory

    d = get_defense(name, params)
    out = Path(out)
    if d.stage in ("data", "fine-tuning") and not data:
        raise FtauditError(f"defense {d.name} acts on training data: give --data FILE.jsonl (chat records)")
    if d.stage == "post-hoc" and not adapter:
        raise FtauditError(f"defense {d.name} repairs a trained LoRA adapter: give --adapter DIR (trained from --model)")
    records = load_chat_records(data) if data else []
    _reset_peak_memory()
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="ftaudit-defend-") as tmp:
        store = Store(tmp)  # the defense's own generations (e.g. alignment answers): not part of any run
        # an alignment-time defense's hardening takes the user's mixed precision too (its other options are the
        # align recipe's, as for the undefended aligned model)
        ctx = DefenseContext(store, model, unaligned, align_params or {}, seed, reference_model=reference_model,
                             train={k: v for k, v in (train or {}).items() if k == "mixed_precision" and v})
        try:
            report = _apply(d, ctx, out, records, adapter, model, train or {}, seed)
        finally:
            store.close()
    record = {"defense": d.name, "label": d.label, "stage": d.stage, "params": d.params(), "model": model,
              "seconds": round(time.time() - start, 1), "peak_memory_mb": round(_peak_memory_mb(), 1), "report": report}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / COST_FILE, json.dumps(record, indent=2, default=str))
    return record


def _apply(d, ctx: DefenseContext, out: Path, records: list, adapter, model: str, train: dict, seed: int) -> dict:
    if d.stage == "alignment":
        return d.harden(ctx, out)
    if d.stage == "post-hoc":
        return d.repair(ctx, Path(adapter), out)
    kept, report = d.screen(ctx, records)
    if d.stage == "data":
        save_chat_records(kept, out / "train_data.jsonl")
        atomic_write_text(out / "screening.json", json.dumps(report, indent=2, default=str))
        return report
    from ..fine_tune import train_config
    from ..train import train as run_training

    cfg = train_config({"seed": seed}, {**train, **d.train_overrides()})
    result = run_training(kept, model, cfg, out, recipe=f"custom~{d.label}")
    return {**report, "train_seconds": result.train_seconds, "train_tokens": result.train_tokens}
