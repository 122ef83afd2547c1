"""An experiment's report (a grid, the quickstart, a customer job): ``experiment.json`` records what the run's store
cannot (attack budgets, price, tamper rule, defended models, searches), and the report adds budgets, prices, tamper
scores and the defense matrix to the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_write_text
from ..errors import FtauditError
from ..seeds import split_seed
from .pricing import priced
from .tamper_scores import tamper_scores
from .writer import write_reports

if TYPE_CHECKING:
    from ..experiments.spec import GridPoint


def write_experiment(out: str | Path, budgets: dict, price_per_device_hour: float | None, seeds, tamper: dict | None = None,
                     **extra) -> None:
    """``out/experiment.json``: what :func:`report_experiment` needs to render the run again (attack budgets, price,
    tamper rule, seeds; for grids the defended models and searches, for the quickstart the alignment decision)."""
    atomic_write_text(Path(out) / "experiment.json", json.dumps({
        "budgets": budgets, "price_per_device_hour": price_per_device_hour, "tamper": tamper or {}, "seeds": seeds,
        **extra}, indent=2))


def report_experiment(out: str | Path, show_responses: bool = False, force: bool = False, existing: bool = False) -> dict:
    """Render a run directory; for an experiment or quickstart (``experiment.json``) add budgets, prices (when a price
    per device-hour was given), tamper scores and the alignment decision.
    ``force`` and ``existing`` are :func:`~ftaudit.report.write_reports`'s."""
    out = Path(out)
    meta_path = out / "experiment.json"
    if not meta_path.exists():
        return write_reports(out, show_responses, force=force, existing=existing)
    meta = json.loads(meta_path.read_text())
    budgets = {label: {"initial_model": meta.get("initial_model"), **b} for label, b in meta["budgets"].items()}
    budgets = _with_curves(budgets, out)
    tamper = meta.get("tamper") or {}

    threshold, relative = float(tamper.get("threshold", 0.5)), bool(tamper.get("relative", True))

    def enrich(summary: dict, rows: list[dict], cap_rows: list[dict]) -> dict:
        from .defense_matrix import defense_matrix

        price = meta.get("price_per_device_hour")
        return {"budgets": budgets, "costs": priced(summary["costs"], price, budgets),
                "reference_models": sorted({b["same_prompt_reference"] for b in budgets.values()
                                            if b.get("same_prompt_reference")}),
                "tamper_resistance": tamper_scores(rows, budgets, threshold, relative),
                "defense_matrix": defense_matrix(summary, rows, budgets, meta.get("defended_models") or {},
                                                 meta.get("searches") or {}, threshold, relative, cap_rows,
                                                 meta.get("left_out") or []),
                "searches": meta.get("searches") or {}, **({"alignment": meta["alignment"]} if "alignment" in meta else {}),
                **({"prefill": _prefill(meta["prefill"], rows)} if meta.get("prefill") else {}),
                **({"audit": meta["audit"]} if "audit" in meta else {})}

    return write_reports(out, show_responses, enrich=enrich, force=force, existing=existing, tamper=tamper)


def _with_curves(budgets: dict, out: Path) -> dict:
    """Budgets written before points had a curve get theirs from the run's spec.json, so a re-rendered old run never
    puts two settings on one curve; where the spec cannot say, each point is its own curve."""
    if all("curve" in b for b in budgets.values()):
        return budgets
    from ..experiments.spec import curve_label

    by_label: dict[str, GridPoint] = {}
    try:
        from ..experiments.spec import parse_spec

        spec = json.loads((out / "spec.json").read_text())
        data = {k: v for k, v in spec.items() if k in _SPEC_FILE_KEYS and v is not None}
        if data.get("seeds"):
            data.pop("seed", None)
        by_label = {p.label: p for p in parse_spec(data).points()}
    except (OSError, ValueError, FtauditError, TypeError, KeyError):
        pass
    fixed = {}
    for label, b in budgets.items():
        if "curve" not in b:
            point = by_label.get(split_seed(b.get("attack", ""))[0])
            b = {**b, "curve": point.curve if point else f"unknown:{split_seed(label)[0]}",
                 "curve_label": curve_label(point) if point else ""}
        fixed[label] = b
    return fixed


_SPEC_FILE_KEYS = ("name", "models", "attacks", "grid", "eval", "seed", "seeds", "defenses", "reference_model", "align",
                   "mixed_precision")


def _prefill(meta: dict, rows: list[dict]) -> dict:
    """The prefilling attack's rows (:func:`ftaudit.prefill.prefill_rows`) for the models the run prefilled."""
    from .prefill import prefill_rows

    judges = sorted({r["judge"] for r in rows if r["refused"] is not None})
    return {**meta, "rows": prefill_rows(rows, meta["models"], tuple(meta["tokens"]), judges, meta.get("undefended"))}
