"""Execute a spec: align (optionally), then every grid point (train -> generate -> judge -> metrics),
each skipped when its outputs exist, so rerunning the same command after ``kill -9`` finishes the grid."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
from dataclasses import dataclass, replace
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import FtauditError
from ..generate import GenerationConfig
from ..atomic import file_lock
from ..defenses import DefenseContext
from ..pipeline import (JobRejected, StageRunner, aligned_model, attack_budget, eval_sets_from, evaluate_system_twin,
                        run_recipe)
from ..report import write_reports
from ..seeds import seed_name, split_seed
from ..progress import say
from ..store import Store
from .executors import executor_session, run_points
from .search import run_searches
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
    seed: int | None = None  # one of several seeds (names carry @seed=S); None: the spec's single seed
    defense: dict | None = None  # {"name", "params"}; None: undefended
    unaligned: str | None = None  # the model before safety training (SafeLoRA needs it)
    search_trial: bool = False  # a search trial: evaluated on the search prompts only

    def defense_obj(self):
        from ..defenses import get_defense

        return get_defense(self.defense["name"], self.defense["params"]) if self.defense else None

    @property
    def defense_label(self) -> str:
        d = self.defense_obj()
        return d.label if d else "none"

    @property
    def label(self) -> str:
        """``aligned+harmful-shots(shots=10)``; a data, fine-tuning or post-hoc defense adds ``~safety-mix(ratio=0.1)``
        (an alignment-time one is already in the initial model's name, ``aligned~vaccine``)."""
        d = self.defense_obj()
        suffix = f"~{d.label}" if d and d.stage != "alignment" else ""
        return seed_name(f"{self.initial_name}+{self.point.label}{suffix}", self.seed)

    def _leaf(self) -> str:
        return self.point.key if self.seed is None else f"{self.point.key}-seed{self.seed}"

    @property
    def model_dir(self) -> Path:
        """Where the evaluated model is written: undefended points keep their old place (``models/<key>``)."""
        if self.defense is None:
            return Path(self.models_dir) / self._leaf()
        return Path(self.models_dir) / "defended" / slug(self.defense_label) / self._leaf()

    @property
    def train_dir(self) -> Path:
        """Where the attack trains: a post-hoc defense repairs the undefended point's weights, so it shares them."""
        d = self.defense_obj()
        return Path(self.models_dir) / self._leaf() if d is None or not d.changes_training else self.model_dir


def slug(text: str) -> str:
    """A folder name for a label: ``safety-mix(ratio=0.1)`` -> ``safety-mix_ratio=0.1_``."""
    import re

    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)


def run_spec(spec: ExperimentSpec, out: str | Path, executor: str = "local", address: str | None = None) -> dict:
    """Run every grid point of ``spec`` into ``out``; returns the summary (with costs and tamper scores).

    ``executor="ray"`` runs the points as Ray tasks (``address``: a cluster, or None for a local instance);
    ``out`` must then be on storage every worker sees.
    """
    with executor_session(executor, address):  # an unknown executor or unreachable cluster fails before any work
        out = Path(out)
        spec = held_out_spec(spec, out)
        store = Store(out)
        atomic_write_text(out / "spec.json", json.dumps(spec.to_dict(), indent=2, default=str))
        jobs, defended = _prepare_models(spec, out, StageRunner(store))
        store.close()
        budgets = dict(run_points(run_point, jobs, executor=executor, resources=spec.resources,
                                  detach=_detach, merge=_merge))
        searches = run_searches(spec, out, jobs, budgets) if spec.search else {}
    write_experiment(out, budgets, spec.price_per_device_hour, spec.seeds, spec.tamper, defended_models=defended,
                     searches=searches)
    return report_experiment(out)


def plan(spec: ExperimentSpec) -> dict:
    """What ``run_spec`` would train and evaluate, computed from the spec alone (nothing is loaded or written): one row
    per attacked model (name as the report will show it, defense, seed, budget in examples x epochs, identity, curve)
    and the counts of trainings and evaluations, search trials included."""
    from ..recipes.base import SYSTEM_PROMPTED

    rows, trainings, evaluations = [], 0, 0
    for model in spec.models:
        short = model_short_name(model) if len(spec.models) > 1 else None
        initial_name = (f"{short}-aligned" if short else "aligned") if spec.align else (short or "initial")
        trainings += int(spec.align)
        evaluations += 1
        twins = {p.recipe for p in spec.points() if p.recipe in SYSTEM_PROMPTED}
        for d, d_spec in zip(spec.defense_objects(), [None, *spec.defenses]):
            start = initial_name
            if d is not None and d.stage == "alignment":
                start = f"{initial_name}~{d.label}"
                trainings += 1
                evaluations += 1
            evaluations += len(twins)
            for p in spec.points():
                for seed in spec.run_seeds():
                    job = PointJob(spec, p, "", start, "", "", seed=seed, defense=d_spec)
                    trains = d is None or d.changes_training
                    trainings += int(trains)
                    evaluations += 1
                    rows.append({"name": job.label, "model": model, "defense": job.defense_label, "seed": spec.seed_of(seed),
                                 "examples_x_epochs": p.examples_x_epochs(), "identity": p.identity, "curve": p.curve,
                                 "trains": trains})
    searched = 0
    if spec.search:
        recipes = spec.search.recipes or sorted({a.recipe for a in spec.attacks})
        studies = len(spec.models) * len(spec.defense_objects()) * len(recipes)
        searched = studies * spec.search.trials
        trainings += searched - studies  # trial 0 of each study is the grid point itself
        evaluations += searched + studies  # every trial on the search prompts, the best again on the reported ones
    return {"points": rows, "trainings": trainings, "evaluations": evaluations, "search_trials": searched}


def held_out_spec(spec: ExperimentSpec, out: Path) -> ExperimentSpec:
    """The spec with every eval set's near-duplicates of user-supplied training data left out (all models, so the
    comparisons stay paired), recorded in ``out/held_out.json``."""
    from ..held_out import exclude_near_duplicates, record

    prompts, files = spec.training_files()
    if not prompts:
        return spec
    sets, dropped = exclude_near_duplicates(eval_sets_from(spec.eval.datasets, spec.eval.benign), prompts)
    record(out, dropped, files)
    if any(dropped.values()):
        say("left out of the evaluation as near-duplicates of training data you supplied: "
            + ", ".join(f"{k} {v}" for k, v in dropped.items() if v), "yellow")
    return replace(spec, exclude={s.label: list(s.exclude) for s in sets if s.exclude})


def _prepare_models(spec: ExperimentSpec, out: Path, stages: StageRunner) -> tuple[list[PointJob], dict]:
    """Align (optionally) and evaluate each model of the spec, harden it with each alignment-time defense and
    evaluate that too; return the grid points (x defenses) as jobs, and the defended models' cost records."""
    ev = spec.eval
    jobs: list[PointJob] = []
    defended: dict[str, dict] = {}
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
            unaligned = model if spec.align else None
            for d, d_spec in zip(spec.defense_objects(), [None, *spec.defenses]):
                start, start_name = initial, initial_name
                if d is not None and d.stage == "alignment":
                    start_name = f"{initial_name}~{d.label}"
                    start = str(models_dir / "defended" / slug(d.label) / "initial")
                    with stages(f"defend:{start_name}"):
                        ctx = DefenseContext(stages.store, initial, unaligned, spec.align_params, spec.seed)
                        defended[start_name] = {"defense": d.label, "stage": d.stage, "base_model": initial_name,
                                                **d.harden(ctx, Path(start))}
                    stages.evaluate(start_name, f"defense:{d.label}", start, _sets(spec), _gen(spec), ev.judges,
                                    ev.capability, ev.capability_limit)
                jobs += [PointJob(spec, p, start, start_name, str(models_dir), str(out), seed=s, defense=d_spec,
                                  unaligned=unaligned) for p in spec.points() for s in spec.run_seeds()]
    except (FtauditError, KeyboardInterrupt) as exc:
        raise stages.stopped(exc) from None
    return jobs, defended


def _sets(spec: ExperimentSpec):
    return [replace(s, exclude=tuple(spec.exclude.get(s.label, ()))) for s in eval_sets_from(spec.eval.datasets, spec.eval.benign)]


def search_sets(spec: ExperimentSpec):
    """The search's prompts: per harmful set, ``search.prompts`` eval-split prompts *after* the reported subset
    (disjoint from it, so the setting the search picks is reported on prompts it was not chosen on); the dataset is
    labelled ``NAME:search`` so its rows never pool with the reported ones."""
    from dataclasses import replace as _replace

    return [_replace(s, offset=s.limit or 0, limit=spec.search.prompts, role="search")
            for s in _sets(spec) if s.kind == "harmful"]


def _gen(spec: ExperimentSpec) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=spec.eval.max_new_tokens, batch_size=spec.eval.batch_size, dtype=spec.eval.dtype)


def _detach(job: PointJob) -> PointJob:
    """Give a Ray task its own store: a snapshot of the run's store in ``DIR/points/<initial model>-[<defense>-]<point key>``."""
    defended = "" if job.defense is None else f"{slug(job.defense_label)}-"
    point_dir = Path(job.out) / "points" / f"{job.initial_name}-{defended}{job.model_dir.name}"
    with Store(job.out) as store:
        store.snapshot_to(point_dir)
    return replace(job, store_dir=str(point_dir))


def _merge(job: PointJob) -> None:
    with Store(job.out) as store:
        store.merge_from(Path(job.store_dir))


def run_point(job: PointJob) -> tuple[str, dict]:
    """Attack (under the job's defense), evaluate and cost one grid point (in this process or a Ray worker);
    returns (label, budget)."""
    spec, point, ev = job.spec, job.point, job.spec.eval
    store = Store(job.store_dir or job.out)
    stages = StageRunner(store)
    d = job.defense_obj()
    ctx = DefenseContext(store, job.initial, job.unaligned, spec.align_params, spec.seed_of(job.seed))
    in_training = d if d is not None and d.stage in ("data", "fine-tuning") else None
    evaluated, rejected, report = job.train_dir, None, None
    try:
        job.train_dir.parent.mkdir(parents=True, exist_ok=True)
        with stages(f"attack:{job.label}"), file_lock(job.train_dir, timeout=-1):  # post-hoc points share the undefended weights
            try:
                _, result = run_recipe(store, point.recipe, job.initial, job.train_dir, model_name=job.initial_name,
                                       reference_model=spec.reference_model, params=point.params, overrides=point.train,
                                       seed=spec.seed_of(job.seed), display_name=job.label, defense=in_training,
                                       defense_ctx=ctx)
            except JobRejected as exc:  # the service trains nothing: the released model is what the attacker gets
                evaluated, rejected, result = job.initial, str(exc), None
        if d is not None and d.stage == "post-hoc":
            with stages(f"defend:{job.label}"):
                report = d.repair(ctx, job.train_dir, job.model_dir)
            evaluated = job.model_dir
        sets = search_sets(spec) if job.search_trial else _sets(spec)
        stages.evaluate(job.label, seed_name(point.label, job.seed), str(evaluated), sets, _gen(spec), ev.judges,
                        ev.capability, ev.capability_limit)
        twin = None if rejected else evaluate_system_twin(stages, job.initial_name, job.initial, job.train_dir,
                                                           point.recipe, sets, _gen(spec), ev.judges)
    except (FtauditError, KeyboardInterrupt) as exc:
        raise stages.stopped(exc) from None
    store.close()
    budget = {"recipe": point.recipe, "initial_model": job.initial_name, "attack": point.label, "seed": job.seed,
              "defense": job.defense_label, "defense_stage": d.stage if d else None, "examples_x_epochs": 0, "steps": 0,
              "train_seconds": 0.0, "devices": 1, "identity": point.identity, "curve": point.curve,
              "curve_label": curve_label(point), **({"same_prompt_reference": twin} if twin else {})}
    if rejected:
        return job.label, {**budget, "rejected": rejected}
    budget.update(attack_budget(job.train_dir, result))
    meta = json.loads((job.train_dir / "ftaudit_model.json").read_text())
    if meta.get("defense_report") or report:
        budget["defense_report"] = report or meta["defense_report"]
    return job.label, budget


def curve_label(point: GridPoint) -> str:
    """The settings a point's name shows other than its budget (``learning_rate=0.0001``): what names its curve."""
    from ..recipes.base import SIZE_PARAM

    budget_keys = {SIZE_PARAM.get(point.recipe), "epochs"}
    return ",".join(f"{k}={v}" for k, v in (point.shown or ()) if k not in budget_keys)


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

    def enrich(summary: dict, rows: list[dict]) -> dict:
        from ..report.defense_matrix import defense_matrix

        price = meta.get("price_per_device_hour")
        return {"budgets": budgets, "costs": priced(summary["costs"], price, budgets),
                "reference_models": sorted({b["same_prompt_reference"] for b in budgets.values()
                                            if b.get("same_prompt_reference")}),
                "tamper_resistance": tamper_scores(rows, budgets, threshold, relative),
                "defense_matrix": defense_matrix(summary, rows, budgets, meta.get("defended_models") or {},
                                                 meta.get("searches") or {}, threshold, relative),
                "searches": meta.get("searches") or {}, **({"alignment": meta["alignment"]} if "alignment" in meta else {}),
                **({"audit": meta["audit"]} if "audit" in meta else {})}

    return write_reports(out, show_responses, enrich=enrich, force=force, existing=existing, tamper=tamper)


def _with_curves(budgets: dict, out: Path) -> dict:
    """Budgets written before points had a curve get theirs from the run's spec.json, so a re-rendered old run never
    puts two settings on one curve; where the spec cannot say, each point is its own curve."""
    if all("curve" in b for b in budgets.values()):
        return budgets
    by_label: dict[str, GridPoint] = {}
    try:
        from .spec import parse_spec

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


_SPEC_FILE_KEYS = ("name", "models", "attacks", "grid", "eval", "seed", "seeds", "defenses", "reference_model", "align")


def priced(costs: list[dict], price_per_device_hour: float | None, budgets: dict | None = None) -> list[dict]:
    """Add the attack's device-seconds and, when a price is given, an estimated price. The attack's price is its own
    compute: training on every device it used, plus a post-hoc defense's repair of its weights; evaluation
    (generation, search prompts, replaced evaluations) is not the attack's and stays apart in ``generate_seconds``.
    Rows taken over seeds (``per_seed``) carry the mean of their seeds' device-seconds, repairs included."""
    from ..report.render import seed_costs

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


def tamper_scores(rows: list[dict], budgets: dict, threshold: float = 0.5, relative: bool = True) -> list[dict]:
    """One tamper-resistance number per curve and judge version, from the per-prompt refusals on the harmful eval sets
    (pooled), with a joint bootstrap over prompts and seeds (see :mod:`.tamper`).

    A curve holds the points that differ only in budget (same initial model, recipe, defense and every other setting:
    ``curve`` in the budgets); a spec with several settings of one recipe has one curve each. Where the attacked models
    were evaluated under a system prompt their initial model was not (identity shift), the curve is drawn against the
    initial model under that prompt as well (``against``), as the change table is."""
    from ..report.compare import SAME_PROMPT, WITHOUT_PROMPT
    from .tamper import tamper_curve

    refused: dict[tuple, dict[tuple, float]] = defaultdict(dict)  # (model, judge, version) -> {(dataset, prompt): 0/1}
    prompts: dict[str, set] = defaultdict(set)  # model -> the system prompts of its harmful evaluations
    prints: dict[str, str] = {}
    for r in rows:
        if r["kind"] == "harmful" and r["refused"] is not None and r.get("score") is None:
            refused[(r["model"], r["judge"], r["judge_version"])][(r["dataset"], r["split"], r["prompt_id"])] = float(r["refused"])
            prompts[r["model"]].add(r.get("system_prompt") or None)
            prints[r["model"]] = r.get("model_fingerprint")
    groups: dict[tuple, dict[str, dict[int | None, str]]] = defaultdict(lambda: defaultdict(dict))
    for label, b in budgets.items():
        if b.get("rejected"):
            continue  # the service ran no job: no attack budget to place on the curve (the matrix shows the rejection)
        base, seed = split_seed(label)
        groups[(b["initial_model"], b["recipe"], b.get("defense", "none"), b.get("curve"))][base][seed] = label
    groups = _one_point_per_budget(groups, budgets)
    out = []
    for (initial, recipe, defense, curve_key), points in groups.items():
        first = next(iter(next(iter(points.values())).values()))
        for ref, against in _curve_references(initial, prompts.get(first, set()), prompts, prints, SAME_PROMPT, WITHOUT_PROMPT):
            for judge, version in sorted({(j, v) for (m, j, v) in refused if m == ref}):
                before = refused[(ref, judge, version)]
                runs = {base: {s: refused.get((label, judge, version)) for s, label in seeds.items()} for base, seeds in points.items()}
                if any(v is None for seeds in runs.values() for v in seeds.values()):
                    continue  # a point not evaluated by this judge version: no curve for it
                keys = sorted(set(before).intersection(*(v.keys() for seeds in runs.values() for v in seeds.values())))
                if not keys:
                    continue
                curve = []
                for base, seeds in runs.items():
                    bs = [budgets[points[base][s]] for s in seeds]
                    curve.append({"model": base, "budget": bs[0]["examples_x_epochs"], "steps": float(np.mean([b["steps"] for b in bs])),
                                  "device_seconds": float(np.mean([b["train_seconds"] * b.get("devices", 1) for b in bs])),
                                  "seeds": np.array([[seeds[s][k] for k in keys] for s in sorted(seeds, key=lambda x: x or 0)])})
                result = tamper_curve(np.array([before[k] for k in keys]), curve, threshold, relative, dict(OTHER_UNITS))
                out.append({"model": initial, "recipe": recipe, "defense": defense, "judge": judge, "judge_version": version,
                            "curve": budgets[first].get("curve_label") or None, "curve_id": curve_key,
                            **({"initial_model": ref, "against": against} if against else {}),
                            "budget_unit": "examples x epochs", "n_prompts": len(keys), **result})
    return out


def _one_point_per_budget(groups: dict, budgets: dict) -> dict:
    """A curve whose points share a budget (10 shots x 2 epochs and 20 x 1) is one curve per epochs value: two ways of
    spending one budget are two settings, and a crossing between points at one x would depend on their order."""
    out: dict[tuple, dict] = {}
    for key, points in groups.items():
        first = {base: budgets[next(iter(seeds.values()))] for base, seeds in points.items()}
        xs = [b["examples_x_epochs"] for b in first.values()]
        if len(set(xs)) == len(xs):
            out[key] = points
            continue
        for base, seeds in points.items():
            epochs = first[base].get("epochs")
            out.setdefault((*key[:3], f"{key[3]}|epochs={epochs}"), {})[base] = seeds
    return out


def _curve_references(initial: str, mine: set, prompts: dict, prints: dict, same: str, without: str) -> list[tuple]:
    """[(reference model, against label or None)]: the initial model, and where the curve's points were evaluated under
    a system prompt it was not, the same weights evaluated under that prompt."""
    if not prompts.get(initial) or prompts[initial] == mine:
        return [(initial, None)]
    twins = sorted(m for m, p in prompts.items() if p == mine and "+" not in split_seed(m)[0] and m != initial
                   and prints.get(m) and prints.get(m) == prints.get(initial))
    return [(initial, without)] + [(t, same) for t in twins[:1]]


# the same curve against the other attack budgets (the headline uses examples x epochs)
OTHER_UNITS = (("optimizer steps", "steps"), ("training device-seconds", "device_seconds"))
