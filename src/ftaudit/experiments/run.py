"""Execute a spec: align (optionally), then every grid point (train -> generate -> judge -> metrics),
each skipped when its outputs exist, so rerunning the same command after ``kill -9`` finishes the grid."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..errors import FtauditError
from ..generate import GenerationConfig
from ..pipeline import StageRunner, aligned_model, eval_sets_from, run_recipe
from ..report import write_reports
from ..store import Store
from .executors import executor_session, run_points
from .spec import ExperimentSpec, GridPoint, model_short_name


@dataclass
class PointJob:
    """One grid point on one model: everything a worker process needs to run it."""

    spec: ExperimentSpec
    point: GridPoint
    initial: str  # location of the model the attack starts from
    initial_name: str
    models_dir: str
    out: str
    store_dir: str | None = None  # a worker's own store (Ray); None: the run's store


    @property
    def label(self) -> str:
        return f"{self.initial_name}+{self.point.label}"


def run_spec(spec: ExperimentSpec, out: str | Path, executor: str = "local", address: str | None = None) -> dict:
    """Run every grid point of ``spec`` into ``out``; returns the summary (with costs and tamper scores).

    ``executor="ray"`` runs the points as Ray tasks (``address``: a cluster, or None for a local instance);
    ``out`` must then be on storage every worker sees.
    """
    with executor_session(executor, address):  # an unknown executor or unreachable cluster fails before any work
        out = Path(out)
        store = Store(out)
        (out / "spec.json").write_text(json.dumps(asdict(spec), indent=2, default=str))
        jobs = _prepare_models(spec, out, StageRunner(store))
        store.close()
        budgets = dict(run_points(run_point, jobs, executor=executor, resources=spec.resources,
                                  detach=_detach, merge=_merge))
    (out / "experiment.json").write_text(json.dumps({"budgets": budgets, "price_per_device_hour": spec.price_per_device_hour},
                                                    indent=2))
    return report_experiment(out)


def _prepare_models(spec: ExperimentSpec, out: Path, stages: StageRunner) -> list[PointJob]:
    """Align (optionally) and evaluate each model of the spec; return its grid points as jobs."""
    ev = spec.eval
    jobs: list[PointJob] = []
    try:
        for model in spec.models:
            short = model_short_name(model) if len(spec.models) > 1 else None
            models_dir = out / "models" / short if short else out / "models"
            initial, initial_name = model, short or "initial"
            if spec.align:
                initial_name = f"{short}-aligned" if short else "aligned"
                with stages(f"align:{short}" if short else "align"):
                    initial = aligned_model(stages.store, model, models_dir / "aligned", params=spec.align_params,
                                            seed=spec.seed, name=initial_name)
            stages.evaluate(initial_name, "none", initial, _sets(spec), _gen(spec), ev.judges, ev.capability,
                            ev.capability_limit)
            jobs += [PointJob(spec, p, initial, initial_name, str(models_dir), str(out)) for p in spec.points()]
    except (FtauditError, KeyboardInterrupt) as exc:
        raise stages.stopped(exc) from None
    return jobs


def _sets(spec: ExperimentSpec):
    return eval_sets_from(spec.eval.datasets, spec.eval.benign)


def _gen(spec: ExperimentSpec) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=spec.eval.max_new_tokens, batch_size=spec.eval.batch_size)


def _detach(job: PointJob) -> PointJob:
    """Give a Ray task its own store: a snapshot of the run's store in ``DIR/points/<initial model>-<point key>``."""
    point_dir = Path(job.out) / "points" / f"{job.initial_name}-{job.point.key}"
    with Store(job.out) as store:
        store.snapshot_to(point_dir)
    return replace(job, store_dir=str(point_dir))


def _merge(job: PointJob) -> None:
    with Store(job.out) as store:
        store.merge_from(Path(job.store_dir))


def run_point(job: PointJob) -> tuple[str, dict]:
    """Attack, evaluate and cost one grid point (in this process or a Ray worker); returns (label, budget)."""
    spec, point, ev = job.spec, job.point, job.spec.eval
    store = Store(job.store_dir or job.out)
    stages = StageRunner(store)
    target = Path(job.models_dir) / point.key
    try:
        with stages(f"attack:{job.label}"):
            _, result = run_recipe(store, point.recipe, job.initial, target, model_name=job.initial_name,
                                   reference_model=spec.reference_model, params=point.params, overrides=point.train,
                                   seed=spec.seed, display_name=job.label)
        stages.evaluate(job.label, point.label, str(target), _sets(spec), _gen(spec), ev.judges, ev.capability,
                        ev.capability_limit)
    except (FtauditError, KeyboardInterrupt) as exc:
        raise stages.stopped(exc) from None
    store.close()
    meta = json.loads((target / "ftaudit_model.json").read_text())
    n_examples = sum(1 for _ in open(target / "train_data.jsonl"))
    return job.label, {"recipe": point.recipe, "initial_model": job.initial_name,
                       "examples_x_epochs": n_examples * meta["train_config"]["epochs"], "steps": result.steps,
                       "train_seconds": result.train_seconds, "devices": result.devices}


def report_experiment(out: str | Path, show_responses: bool = False) -> dict:
    """Render a run directory; for an experiment (``experiment.json``) add budgets, prices and tamper scores."""
    out = Path(out)
    meta_path = out / "experiment.json"
    if not meta_path.exists():
        return write_reports(out, show_responses)
    meta = json.loads(meta_path.read_text())
    budgets = {label: {"initial_model": meta.get("initial_model"), **b} for label, b in meta["budgets"].items()}

    def enrich(summary: dict) -> dict:
        return {"budgets": budgets, "tamper_resistance": tamper_scores(summary, budgets),
                "costs": priced(summary["costs"], meta["price_per_device_hour"])}

    return write_reports(out, show_responses, enrich=enrich)


def priced(costs: list[dict], price_per_device_hour: float) -> list[dict]:
    """Add device-seconds (training on every device it used + generation) and an estimated price."""
    out = []
    for c in costs:
        device_seconds = c["train_seconds"] * c.get("devices", 1) + c.get("generate_seconds", 0.0)
        out.append({**c, "device_seconds": round(device_seconds, 1),
                    "estimated_price": round(device_seconds / 3600 * price_per_device_hour, 4)})
    return out


def tamper_scores(summary: dict, budgets: dict) -> list[dict]:
    """One tamper-resistance number per (initial model, recipe), from the refusal drop against examples x epochs."""
    drops: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for c in summary["changes"]:
        b = budgets.get(c["model"])
        if c["metric"] == "refusal_rate" and b and c["initial_model"] == b["initial_model"]:
            drops[c["model"]].append((-c["change"]["value"], -c["change"]["ci"][1], -c["change"]["ci"][0]))
    curves: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for model, values in drops.items():
        n = len(values)
        b = budgets[model]
        curves[b["initial_model"], b["recipe"]].append({
            "budget": b["examples_x_epochs"], "steps": b["steps"], "device_seconds": b["train_seconds"] * b.get("devices", 1),
            "drop": sum(v[0] for v in values) / n,
            "drop_ci": [sum(v[1] for v in values) / n, sum(v[2] for v in values) / n], "model": model})
    from .tamper import tamper_resistance

    return [{"model": initial, "recipe": recipe, "budget_unit": "examples x epochs", "points": pts, **tamper_resistance(pts),
             "other_units": {unit: tamper_resistance([{**p, "budget": p[key]} for p in pts]) for unit, key in OTHER_UNITS}}
            for (initial, recipe), pts in curves.items()]


# the same curve against the other attack budgets (the headline uses examples x epochs)
OTHER_UNITS = (("optimizer steps", "steps"), ("training device-seconds", "device_seconds"))
