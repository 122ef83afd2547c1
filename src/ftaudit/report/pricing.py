"""What an attack cost: device-seconds of its training (and a post-hoc repair), priced per device-hour."""

from __future__ import annotations

from .summary import seed_costs


def priced(costs: list[dict], price_per_device_hour: float | None, budgets: dict | None = None) -> list[dict]:
    """Add the attack's device-seconds and, when a price is given, an estimated price. The attack's price is its own
    compute: training on every device it used, plus a post-hoc defense's repair of its weights; evaluation
    (generation, search prompts, replaced evaluations) is not the attack's and stays apart in ``generate_seconds``.
    Rows taken over seeds (``per_seed``) carry the mean of their seeds' device-seconds, repairs included."""
    repairs = {label: float((b.get("defense_report") or {}).get("seconds") or 0.0) for label, b in (budgets or {}).items()
               if b.get("defense_stage") == "post-hoc"}
    out = []
    for c in [c for c in costs if not c.get("per_seed")]:
        seconds = c["train_seconds"] * c.get("devices", 1) + repairs.get(c["model"], 0.0)
        out.append({**c, "device_seconds": round(seconds, 1), **({"defense_seconds": repairs[c["model"]]}
                                                                  if c["model"] in repairs else {})})
    out += seed_costs(out)  # rows over seeds, from their seeds' device-seconds (repairs included)
    if price_per_device_hour is not None:
        out = [{**c, "estimated_price": round(_seconds(c) / 3600 * price_per_device_hour, 4)} for c in out]
    return out


def _seconds(c: dict) -> float:
    return sum(c["per_seed"].values()) / len(c["per_seed"]) if c.get("per_seed") else c["device_seconds"]
