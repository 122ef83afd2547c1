"""Flag refusal figures on which two refusal judges, scoring the same responses, differ by more than 10 points."""

from __future__ import annotations

THRESHOLD = 0.10  # 10 percentage points


def _flag(rows: list[dict], fields: tuple[str, ...]) -> None:
    judges = {r["judge"] for r in rows}
    if len(judges) < 2:
        return
    for field in fields:
        values = {r["judge"]: r[field] if field != "change" else r["change"]["value"] for r in rows}
        if max(values.values()) - min(values.values()) > THRESHOLD:
            text = " vs ".join(f"{j} {100 * v:+.1f} pts" if field == "change" else f"{j} {100 * v:.1f}%"
                               for j, v in sorted(values.items()))
            for r in rows:
                r.setdefault("judges_disagree", []).append(f"{field.replace('_', '-')}: {text}")


def flag_disagreements(summary: dict) -> int:
    """Add ``judges_disagree`` (a list of lines) to every refusal-rate result and change whose value differs by more
    than :data:`THRESHOLD` between refusal judges of the same evaluation (same model fingerprint, dataset, split,
    generation settings and seed). Returns how many figures were flagged."""
    groups: dict[tuple, list[dict]] = {}
    for r in summary.get("results", []):
        if r["metric"] == "refusal_rate":
            key = ("result", r["model"], r.get("model_fingerprint"), r["dataset"], r["split"], r.get("generation"), r.get("seed"))
            groups.setdefault(key, []).append(r)
    for c in summary.get("changes", []):
        if c["metric"] == "refusal_rate":
            key = ("change", c["model"], c.get("initial_model"), c["attack"], c["dataset"], c.get("split"), c.get("seed"))
            groups.setdefault(key, []).append(c)
    for key, rows in groups.items():
        _flag(rows, ("value",) if key[0] == "result" else ("initial", "fine_tuned", "change"))
    return sum("judges_disagree" in r for rows in groups.values() for r in rows)
