"""Execute a spec: align (optionally), then every grid point (train -> generate -> judge -> metrics),
each skipped when its outputs exist, so rerunning the same command after ``kill -9`` finishes the grid."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from ..errors import FtauditError
from ..generate import GenerationConfig
from ..pipeline import StageRunner, eval_sets_from, run_recipe
from ..progress import console
from ..report import build_summary, write_reports
from ..store import Store
from .spec import ExperimentSpec
from .tamper import tamper_resistance


def run_spec(spec: ExperimentSpec, out: str | Path) -> dict:
    """Run every grid point of ``spec`` into ``out``; returns the summary (with costs and tamper scores)."""
    out = Path(out)
    store = Store(out)
    (out / "spec.json").write_text(json.dumps(asdict(spec), indent=2, default=str))
    sets = eval_sets_from(spec.eval.datasets, spec.eval.benign)
    gen = GenerationConfig(max_new_tokens=spec.eval.max_new_tokens, batch_size=spec.eval.batch_size)
    stages = StageRunner(store)
    ev = spec.eval
    points = spec.points()
    try:
        initial, initial_name = spec.model, "initial"
        if spec.align:
            with stages("align"):
                run_recipe(store, "align", spec.model, out / "models" / "aligned", model_name="baseline",
                           params=spec.align_params, seed=spec.seed)
            initial, initial_name = str(out / "models" / "aligned"), "aligned"
        stages.evaluate(initial_name, "none", initial, sets, gen, ev.judges, ev.capability, ev.capability_limit)
        budgets = {}
        for i, point in enumerate(points, 1):
            console.print(f"[bold]grid point {i}/{len(points)}[/] {point.label}", highlight=False)
            label = f"{initial_name}+{point.label}"
            with stages(f"attack:{point.label}"):
                _, result = run_recipe(store, point.recipe, initial, out / "models" / point.key, model_name=initial_name,
                                       reference_model=spec.reference_model, params=point.params, overrides=point.train,
                                       seed=spec.seed, display_name=label)
            meta = json.loads((out / "models" / point.key / "ftaudit_model.json").read_text())
            n_examples = sum(1 for _ in open(out / "models" / point.key / "train_data.jsonl"))
            budgets[label] = {"recipe": point.recipe, "examples_x_epochs": n_examples * meta["train_config"]["epochs"],
                              "steps": result.steps, "train_seconds": result.train_seconds}
            stages.evaluate(label, point.label, str(out / "models" / point.key), sets, gen, ev.judges, ev.capability,
                            ev.capability_limit)
    except (FtauditError, KeyboardInterrupt) as exc:
        raise stages.stopped(exc) from None
    store.close()
    (out / "experiment.json").write_text(json.dumps({"budgets": budgets, "initial_model": initial_name,
                                                     "price_per_device_hour": spec.price_per_device_hour}, indent=2))
    return report_experiment(out)


def report_experiment(out: str | Path, show_responses: bool = False) -> dict:
    """Render a run directory; for an experiment (``experiment.json``) add budgets, prices and tamper scores."""
    out = Path(out)
    meta_path = out / "experiment.json"
    if not meta_path.exists():
        return write_reports(out, show_responses)
    meta = json.loads(meta_path.read_text())
    store = Store(out)
    try:
        summary = build_summary(store)  # the changes the tamper scores need, without rendering twice
    finally:
        store.close()
    extra = {"budgets": meta["budgets"], "tamper_resistance": tamper_scores(summary, meta["budgets"], meta["initial_model"]),
             "costs": priced(summary["costs"], meta["price_per_device_hour"])}
    return write_reports(out, show_responses, extra=extra)


def priced(costs: list[dict], price_per_device_hour: float) -> list[dict]:
    """Add device-seconds (training + generation on the device used) and an estimated price."""
    out = []
    for c in costs:
        device_seconds = c["train_seconds"] + c.get("generate_seconds", 0.0)
        out.append({**c, "device_seconds": round(device_seconds, 1),
                    "estimated_price": round(device_seconds / 3600 * price_per_device_hour, 4)})
    return out


def tamper_scores(summary: dict, budgets: dict, initial_name: str) -> list[dict]:
    """One tamper-resistance number per recipe, from the refusal drop against examples x epochs."""
    drops: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for c in summary["changes"]:
        if c["metric"] == "refusal_rate" and c["initial_model"] == initial_name and c["model"] in budgets:
            drops[c["model"]].append((-c["change"]["value"], -c["change"]["ci"][1], -c["change"]["ci"][0]))
    per_recipe: dict[str, list[dict]] = defaultdict(list)
    for model, values in drops.items():
        n = len(values)
        b = budgets[model]
        per_recipe[b["recipe"]].append({"budget": b["examples_x_epochs"], "drop": sum(v[0] for v in values) / n,
                                        "drop_ci": [sum(v[1] for v in values) / n, sum(v[2] for v in values) / n],
                                        "model": model})
    return [{"model": initial_name, "recipe": recipe, "budget_unit": "examples x epochs", "points": pts,
             **tamper_resistance(pts)} for recipe, pts in per_recipe.items()]
