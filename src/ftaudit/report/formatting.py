"""How the reports, tables and the CLI write a number: rates, changes, intervals, tamper headlines, seed spreads."""

from __future__ import annotations

from collections import defaultdict

from ..metrics import is_rate


def category_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Refusal / over-refusal rate per (dataset, category) with one column per model."""
    cells: dict[tuple, dict[str, str]] = defaultdict(dict)
    models: list[str] = []
    for r in summary["category_results"]:
        if r["metric"] not in ("refusal_rate", "over_refusal_rate"):
            continue
        if r["model"] not in models:
            models.append(r["model"])
        cells[(r["dataset"], r.get("category") or "-")][r["model"]] = f"{100 * r['value']:.0f}% ({r['n']})"
    rows = [[d, c, *[cells[(d, c)].get(m, "") for m in models]] for d, c in sorted(cells)]
    return ["dataset", "category", *models], rows


def fmt_metric(metric: str, x: float) -> str:
    """Rates as percentages, everything else (NLL, scores) as numbers."""
    return pct(x) if is_rate(metric) else f"{x:.3f}"


def fmt_change(metric: str, change: dict) -> str:
    """'-83.3 pts [-95.0, -70.0]' for rates, '+1.20 [0.80, 1.60]' for scores."""
    if is_rate(metric):
        return f"{100 * change['value']:+.1f} pts {ci_text(change['ci'])}"
    return f"{change['value']:+.3f} [{change['ci'][0]:.3f}, {change['ci'][1]:.3f}]"


def tamper_line(t: dict) -> str:
    """The headline sentence: what was measured, the definition, the number and its joint-bootstrap interval."""
    lo, hi = t["ci"]
    if t.get("at_or_below"):  # the smallest budget tested already crosses: nothing measured below it
        ci = f"95% CI 0 to {'not reached' if hi is None else f'{hi:.4g}'}"
    else:
        ci = (f"95% CI {'?' if lo is None else f'{lo:.4g}'} to {'not reached' if hi is None else f'{hi:.4g}'}"
              if t["reached"] or lo is not None else "")
    others = "".join(f"; {o['text']} {unit}" for unit, o in (t.get("other_units") or {}).items())
    under = f" under {t['defense']}" if t.get("defense") not in (None, "none") else ""
    setting = f" at {t['curve']}" if t.get("curve") else ""
    against = f"; measured against {t['initial_model']}, {t['against']}" if t.get("against") else ""
    head = f"{t['model']} against {t['recipe']}{setting}{under} ({t['judge']} judge, {t['n_prompts']} harmful prompts{against}): "
    if not t["reached"]:
        drops = [p for p in t["points"] if p["drop"] is not None]
        top = max(drops, key=lambda p: p["drop"]) if drops else None
        largest = (f"; largest drop {100 * top['drop']:.1f}{'%' if t.get('relative') else ' pts'} "
                   f"[{100 * top['drop_ci'][0]:.1f}, {100 * top['drop_ci'][1]:.1f}] at {top['budget']:g}") if top else ""
        bound = f" (95% CI from {lo:.4g})" if lo is not None else ""
        return f"{head}{t['definition']}: {t['text']} {t['budget_unit']}{bound}{largest}"
    return f"{head}{t['definition']} at {t['text']} {t['budget_unit']}{f' ({ci})' if ci else ''}{others}"


def drop_text(c: dict) -> str:
    """'broken: 96.4% [81.2, 100.0] of its initial refusal' for a refusal change row; '-' for the others."""
    d = c.get("drop")
    if not d:
        return "-"
    if d.get("value") is None:
        return d["verdict"]
    unit = "% of the initial refusal" if d.get("relative", True) else " pts"
    lo, hi = d["ci"]
    ends = f"[{'?' if lo is None else f'{100 * lo:.1f}'}, {'?' if hi is None else f'{100 * hi:.1f}'}]"
    return f"{d['verdict']}: {100 * d['value']:.1f}{unit} {ends}"


def spread_text(c: dict) -> str:
    """'3 seeds: -20.0 to -5.0 pts (sd 7.6)' for a row taken over seeds; '' otherwise."""
    sp = c.get("spread")
    if not sp:
        return ""
    scale, unit = (100, " pts") if is_rate(c["metric"]) else (1, "")
    return f"{len(sp['per_seed'])} seeds: {scale * sp['min']:+.1f} to {scale * sp['max']:+.1f}{unit} (sd {scale * sp['sd']:.1f})"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def ci_text(ci) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
