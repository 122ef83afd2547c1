"""The summary.json contract, built from a run's store: results with their identity, changes, costs, settings."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict

from ..defaults import __version__
from ..judges import JUDGES
from ..judges.validate import trust
from ..metrics import capability_metrics, refusal_metrics
from ..store import Store
from .compare import capability_changes, changes, seed_results

# the contract's keys plus the evaluation's identity (judge version, generation-settings hash, weights, seed)
RESULT_KEYS = ("model", "attack", "dataset", "split", "judge", "judge_version", "generation", "model_fingerprint", "seed",
               "metric", "value", "ci", "n")


def store_rows(store: Store) -> list[dict]:
    return [dict(r) for r in store.eval_table()]


def build_summary(store: Store, tamper: dict | None = None) -> dict:
    """The summary.json contract from the store; ``tamper`` (threshold, relative) is the rule each refusal change's
    drop and verdict are read against (default: refusal falls to half its initial value)."""
    rows = store_rows(store)
    cap_rows = store.capability_rows()
    results = [{k: m[k] for k in RESULT_KEYS} for m in refusal_metrics(rows) + capability_metrics(cap_rows)]
    results += seed_results(rows, cap_rows)
    by_cat = refusal_metrics(rows, by_category=True) + capability_metrics(cap_rows, by_category=True)
    costs = [{"model": c["model"], "attack": c["attack"], "train_seconds": round(c["train_seconds"], 1),
              "train_tokens": c["train_tokens"], "peak_memory_mb": c["peak_memory_mb"],
              "generate_seconds": round(c["gen_seconds"], 1), "generated_tokens": c["gen_tokens"], "devices": c["devices"]}
             for c in store.costs() if not c["model"].startswith("reference:")]
    costs += seed_costs(costs)
    from ..held_out import read as read_held_out

    return {"ftaudit_version": __version__, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "held_out": read_held_out(store.dir),
            "stages": store.stages(), "results": results, "judge_calls": store.judge_calls(),
            "judge_validation": trust([(r["judge"], r["judge_version"]) for r in results if r["judge"] in JUDGES]), "category_results": by_cat, "costs": costs,
            "changes": with_costs(in_grid_order(changes(rows, tamper)), costs),
            "capability_changes": with_costs(in_grid_order(capability_changes(cap_rows)), costs),
            "generation_settings": generation_settings(rows, store.gen_settings())}


def generation_settings(rows: list[dict], known: dict[tuple[str, str], dict]) -> dict[str, dict]:
    """Per model, the readable settings of each generation key its evaluations used (the dtype computed in and
    why); a key generated before settings were recorded is listed with ``{}``."""
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(r["model"], {})[r["gen_key"]] = known.get((r["model_fingerprint"], r["gen_key"]), {})
    return out


COST_KEYS = ("train_seconds", "train_tokens", "device_seconds", "estimated_price", "per_seed")


def seed_costs(costs: list[dict]) -> list[dict]:
    """One cost row per setting trained with several seeds (``NAME`` for ``NAME@seed=S``): the mean of each figure,
    and each seed's training device-seconds in ``per_seed``, so a row taken over seeds is priced like its seeds."""
    from ..seeds import split_seed

    groups: dict[str, dict[int, dict]] = defaultdict(dict)
    for c in costs:
        base, seed = split_seed(c["model"])
        if seed is not None:
            groups[base][seed] = c
    out = []
    for base, seeds in groups.items():
        if len(seeds) < 2:
            continue
        rows = list(seeds.values())
        mean = {k: round(sum(r.get(k) or 0 for r in rows) / len(rows), 1)
                for k in ("train_seconds", "generate_seconds", "train_tokens", "generated_tokens")}
        out.append({"model": base, "attack": split_seed(rows[0].get("attack") or base)[0], **mean,
                    "peak_memory_mb": max(r.get("peak_memory_mb") or 0 for r in rows), "devices": rows[0].get("devices", 1),
                    "per_seed": {s: round(seeds[s]["device_seconds"] if seeds[s].get("device_seconds") is not None
                                          else seeds[s]["train_seconds"] * seeds[s].get("devices", 1), 1)
                                 for s in sorted(seeds)}})
    for row in out:
        row["device_seconds"] = round(sum(row["per_seed"].values()) / len(row["per_seed"]), 1)
    return out


def with_costs(rows: list[dict], costs: list[dict]) -> list[dict]:
    """Put each fine-tuned model's training cost (and price, once priced) beside its result."""
    by_model = {c["model"]: c for c in costs}
    return [{**r, **{k: by_model[r["model"]][k] for k in COST_KEYS if k in by_model.get(r["model"], {})}} for r in rows]


def natural_key(text: str) -> list:
    """'shots=50' sorts before 'shots=100': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def in_grid_order(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (natural_key(r["model"]), r["dataset"], r["judge"]))
