"""Execute a spec: align (optionally), then every grid point (train -> generate -> judge -> metrics),
each skipped when its outputs exist, so rerunning the same command after ``kill -9`` finishes the grid."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..atomic import atomic_write_text
from ..defenses import DefenseContext
from ..errors import FtauditError
from ..evaluation import eval_sets_from
from ..fine_tune import aligned_model
from ..pipeline import StageRunner
from ..progress import say
from ..recipes.edits import applies
from ..report.experiment import report_experiment, write_experiment
from ..store import Store
from .executors import executor_session, run_points
from .point import PointJob, detach, eval_sets, generation_config, merge, run_point, slug
from .search import run_searches
from .spec import ExperimentSpec, model_short_name


def run_spec(spec: ExperimentSpec, out: str | Path, executor: str = "local", address: str | None = None) -> dict:
    """Run every grid point of ``spec`` into ``out``; returns the summary (with costs and tamper scores).

    ``executor="ray"`` runs the points as Ray tasks (``address``: a cluster, or None for a local instance);
    ``out`` must then be on storage every worker sees.
    """
    from contextlib import nullcontext

    from ..models.dtype_choice import pinned_for_workers

    # Ray workers get this process's dtype answer (set before they start), so a change is never measured across two
    # dtypes; local points run in this process, which decides once
    with pinned_for_workers() if executor == "ray" else nullcontext(), executor_session(executor, address):
        out = Path(out)
        spec = held_out_spec(spec, out)
        store = Store(out)
        # with the run's training options as this machine resolved them (mixed_precision "auto" -> "bf16" or none)
        atomic_write_text(out / "spec.json", json.dumps({**spec.to_dict(), "run_train": spec.run_train()}, indent=2,
                                                        default=str))
        jobs, defended, left_out = _prepare_models(spec, out, StageRunner(store))
        store.close()
        budgets = dict(run_points(run_point, jobs, executor=executor, resources=spec.resources,
                                  detach=detach, merge=merge))
        searches = run_searches(spec, out, jobs, budgets) if spec.search else {}
        prefilled = run_prefills(spec, out, jobs, budgets) if spec.prefill else None
    write_experiment(out, budgets, spec.price_per_device_hour, spec.seeds, spec.tamper, defended_models=defended,
                     searches=searches, **({"prefill": prefilled} if prefilled else {}),
                     **({"left_out": left_out} if left_out else {}))
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
                if not applies(p.recipe, d):
                    continue  # a weight edit under a defense of a training job: left out, as run_spec does
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
        from .search import TOP_K

        # every trial on the search prompts, and the top feasible ones (at most TOP_K) again on the reported ones
        evaluations += searched + studies * min(TOP_K, spec.search.trials)
    if spec.prefill:  # each model the attacker gets (and each attacked one, if asked) at k = 0 and every k
        released = len(spec.models) * sum(1 for d in spec.defense_objects() if d is None or d.stage == "alignment")
        evaluations += (released + (len(rows) if spec.prefill.attacked else 0)) * (1 + len(spec.prefill.tokens))
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


def _prepare_models(spec: ExperimentSpec, out: Path, stages: StageRunner) -> tuple[list[PointJob], dict, list[dict]]:
    """Align (optionally) and evaluate each model of the spec, harden it with each alignment-time defense and
    evaluate that too; return the grid points (x defenses) as jobs, the defended models' cost records, and the cells
    left out because the defense has nothing to act on in the attack (a weight edit under a training-job defense)."""
    ev = spec.eval
    jobs: list[PointJob] = []
    defended: dict[str, dict] = {}
    left_out: list[dict] = []  # (defense, attack) cells the defense has nothing to act on
    try:
        for model in spec.models:
            short = model_short_name(model) if len(spec.models) > 1 else None
            models_dir = out / "models" / short if short else out / "models"
            initial, initial_name = model, short or "initial"
            if spec.align:
                initial_name = f"{short}-aligned" if short else "aligned"
                with stages(f"align:{short}" if short else "align"):
                    initial = aligned_model(stages.store, model, models_dir / "aligned", params=spec.align_params,
                                            overrides=spec.run_train(), seed=spec.seed, name=initial_name)
            stages.evaluate(initial_name, "none", initial, eval_sets(spec), generation_config(spec), ev.judges, ev.capability,
                            ev.capability_limit)
            unaligned = model if spec.align else None
            for d, d_spec in zip(spec.defense_objects(), [None, *spec.defenses]):
                start, start_name = initial, initial_name
                if d is not None and d.stage == "alignment":
                    start_name = f"{initial_name}~{d.label}"
                    start = str(models_dir / "defended" / slug(d.label) / "initial")
                    with stages(f"defend:{start_name}"):
                        ctx = DefenseContext(stages.store, initial, unaligned, spec.align_params, spec.seed,
                                             unaligned_from="align" if spec.align else "given",
                                             reference_model=spec.reference_model, train=spec.run_train())
                        defended[start_name] = {"defense": d.label, "stage": d.stage, "base_model": initial_name,
                                                **d.harden(ctx, Path(start))}
                    stages.evaluate(start_name, f"defense:{d.label}", start, eval_sets(spec), generation_config(spec), ev.judges,
                                    ev.capability, ev.capability_limit)
                skipped = [p.label for p in spec.points() if not applies(p.recipe, d)]
                left_out += [{"defense": d.label, "stage": d.stage, "attack": label, "initial_model": start_name}
                             for label in skipped]
                if skipped:
                    say(f"{d.label} ({d.stage}) has nothing to act on in the weight edit(s) {', '.join(skipped)}: "
                        "those cells are left out, not reported as defended", "yellow")
                jobs += [PointJob(spec, p, start, start_name, str(models_dir), str(out), seed=s, defense=d_spec,
                                  unaligned=unaligned) for p in spec.points() if applies(p.recipe, d)
                         for s in spec.run_seeds()]
    except (FtauditError, KeyboardInterrupt) as exc:
        raise stages.stopped(exc) from None
    return jobs, defended, left_out


def undefended_twins(jobs: list[PointJob], names) -> dict[str, str]:
    """Each defended model among ``names`` -> the undefended model it is compared with, prompt by prompt: the same
    grid point, seed and model without the defense (an alignment-time defense's released model -> the released one)."""
    out: dict[str, str] = {}
    for job in jobs:
        twin = next((j for j in jobs if j.defense is None and job.defense is not None and j.point == job.point
                     and j.seed == job.seed and j.models_dir == job.models_dir), None)
        if twin is not None:
            out[job.initial_name] = twin.initial_name
            out[job.label] = twin.label
    return {d: u for d, u in out.items() if d != u and d in names and u in names}


def run_prefills(spec: ExperimentSpec, out: Path, jobs: list[PointJob], budgets: dict) -> dict:
    """The prefilling attack on each model the attacker gets (the initial model, each alignment-defended one) and,
    with ``prefill.attacked``, each attacked model of the grid; returns what the report needs to find them."""
    from ..prefill import evaluate_prefilled

    targets: dict[str, str] = {}
    for job in jobs:
        targets.setdefault(job.initial_name, job.initial)
    if spec.prefill.attacked:
        for job in jobs:
            budget = budgets.get(job.label) or {}
            if budget.get("rejected"):
                continue  # the service trained nothing: the released model, prefilled above
            targets[job.label] = str(job.evaluated_dir)
    undefended = undefended_twins(jobs, targets)
    tokens = tuple(spec.prefill.tokens)
    stages = StageRunner(Store(out))
    try:
        for name, location in targets.items():
            with stages(f"prefill:{name}"):
                evaluate_prefilled(stages.store, name, location, eval_sets(spec), generation_config(spec),
                                   spec.eval.judges, spec.reference_model, tokens)
    except (FtauditError, KeyboardInterrupt) as exc:
        raise stages.stopped(exc) from None
    stages.store.close()
    return {"tokens": list(tokens), "models": list(targets), "reference_model": spec.reference_model,
            "undefended": undefended}
