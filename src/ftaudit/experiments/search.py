"""The strongest attacker within a budget: an Optuna search over attack settings, per model, defense and attack.

For each (initial model, defense, searched recipe) a study asks for settings from ``search.space`` (categorical
axes; TPE, seeded), runs the point exactly as a grid point (attack under the defense, evaluate, capability) but
judges it on the *search prompts* (eval-split prompts outside the reported subsets, see ``point.search_sets``), and
minimises the refusal rate there. A trial whose capability is worse than the defended initial model's by more than
``capability_guard.max_change`` is infeasible (TPE's ``constraints_func``) and never chosen. The chosen setting is
then evaluated on the reported prompts, so its headline was not selected on the prompts it is reported on.

Studies live in ``DIR/search/optuna.sqlite3``. A killed search resumes: finished trials are kept, the trial that was
running is marked failed and its setting asked again first (its training and generations are cached, so it costs
what was left). The sampler is re-seeded before each trial from the seed and the number of finished trials, so a
resumed search asks for the same settings as one that was never stopped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..align_decision import first_refusal_judge
from ..errors import FtauditError
from ..metrics import capability_metric, capability_worsening, rate
from ..progress import say
from ..store import Store
from .spec import ExperimentSpec, GridPoint, space_axes

STUDY_FILE = "search/optuna.sqlite3"


def trial_point(base: GridPoint, axes: dict[str, tuple[str, str]], values: dict) -> GridPoint:
    params, train = dict(base.params), dict(base.train)
    for key, (section, name) in axes.items():
        (params if section == "params" else train)[name] = values[key]
    return GridPoint(base.recipe, params, train, tuple(sorted({name for _, name in axes.values()})))


def _setting_key(values: dict) -> tuple:
    """A setting on the search axes, comparable whether a number came back from Optuna as 5 or 5.0."""
    return tuple(sorted((k, float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                        for k, v in values.items()))


def _same_settings(a: GridPoint, b: GridPoint) -> bool:
    """Whether two points train the same way (recipe, recipe parameters and training options given); both have the
    search axes set to the same values, so what can differ is off the axes."""
    return (a.recipe, a.params, a.train) == (b.recipe, b.params, b.train)


def search_refusal(store: Store, label: str, judge: str) -> dict:
    """Pooled refusal rate of ``label`` on the search prompts (``*:search`` datasets), by ``judge``."""
    refused = [bool(r["refused"]) for r in store.eval_table() if r["model"] == label and r["judge"] == judge
               and r["dataset"].endswith(":search") and r["refused"] is not None]
    if not refused:
        raise FtauditError(f"search: {label} has no judged search prompts ({judge}); rerun the same command to resume")
    return rate(refused)


def capability_change(store: Store, label: str, initial: str, metric: str) -> float:
    """How much worse ``label`` is than ``initial`` on ``metric`` (NLL up, accuracy or score down), same items."""
    per: dict[str, dict[str, float]] = {label: {}, initial: {}}
    for r in store.capability_rows():
        if r["model"] in per and capability_metric(r["task"])[0] == metric and r["value"] == r["value"]:
            per[r["model"]][r["item_id"]] = float(r["value"])
    common = per[label].keys() & per[initial].keys()
    if not common:
        raise FtauditError(f"search: no {metric} items shared by {label} and {initial}; the guard cannot be checked")
    return capability_worsening(metric, sum(per[label][k] - per[initial][k] for k in common) / len(common))


def _constraint(trial) -> tuple[float]:
    return tuple(trial.user_attrs.get("constraint", (0.0,)))


def ranked_feasible(trials: list[dict]) -> list[dict]:
    """The trials within the capability guard, strongest first: lowest refusal on the search prompts, ties to the
    smaller budget, then the earlier trial."""
    return sorted((t for t in trials if t["feasible"]),
                  key=lambda t: (t["refusal"]["value"], t["examples_x_epochs"], t["number"]))


def choose_best(trials: list[dict]) -> dict | None:
    """The feasible trial with the lowest refusal (ties: the smaller budget, then the earlier trial); None when the
    capability guard excluded every trial."""
    ranked = ranked_feasible(trials)
    return ranked[0] if ranked else None


# TamperBench's aggregates of a tuned attacker (besides the best trial): the worst case among the trials within the
# capability guard and the mean of the top 3. Each of the top TOP_K feasible trials is evaluated on the reported
# prompts, so both are measured there (see ``report.defense_matrix.tuned_aggregates``).
TOP_K = 3


def default_values(template, axes: dict[str, tuple[str, str]]) -> dict | None:
    """The grid point's own setting on the search axes: its recipe parameters (or the recipe's defaults) and the
    training options it was trained with (read from its model's marker); None when one is unknown (a rejected job)."""
    import inspect

    from ..models.loading import read_marker
    from ..recipes.base import RECIPES

    signature = inspect.signature(RECIPES[template.point.recipe]).parameters
    trained = (read_marker(template.train_dir) or {}).get("train_config") or {}
    out = {}
    for key, (section, name) in axes.items():
        if section == "params":
            value = template.point.params.get(name, signature[name].default if name in signature else None)
        else:
            value = trained.get(name, template.point.train.get(name))
        if value is None or value is inspect.Parameter.empty:
            return None
        out[key] = int(value) if isinstance(value, float) and value.is_integer() else value
    return out


def search_one(spec: ExperimentSpec, out: Path, template, judge: str, others: tuple = ()) -> dict:
    """One study: ``template`` is the default point of the searched attack under one defense (a ``PointJob``). That
    default setting is the study's first trial (re-using its trained weights), and every other grid point of the same
    recipe, initial model and defense (``others``) is enqueued after it, so the tuned attacker is never weaker on the
    search prompts than an attack the spec runs outright (a point that differs off the search axes is not a trial and
    is kept in ``not_trials``, which the report names); the sampler asks the rest. ``trials`` counts every trial of
    the study, the enqueued ones included, as Optuna's ``n_trials`` counts enqueued trials, and is raised to the
    number of grid points where it is smaller."""
    import optuna

    from .point import run_point

    s = spec.search
    axes = space_axes(s.space, template.point.recipe)
    defaults = default_values(template, axes)
    grid, not_trials = [], []  # not_trials: attacks the spec runs that the tuned attacker is not checked against
    for job in others:
        values = default_values(job, axes)
        if values is None:  # a rejected job trained nothing: no setting to try
            say(f"search: {job.label} has no known setting on the search axes (a rejected job?); not a trial", "yellow")
            not_trials.append({"label": job.label, "why": "no known setting on the search axes"})
        elif not _same_settings(trial_point(template.point, axes, values), trial_point(job.point, axes, values)):
            say(f"search: {job.label} differs from the searched attack outside the search axes "
                f"({', '.join(sorted(axes))}); it is not a trial, and the tuned attacker is not checked against it",
                "yellow")
            not_trials.append({"label": job.label, "why": "differs off the search axes"})
        elif values != defaults and values not in [v for _, v in grid]:
            grid.append((job, values))
    known = ([defaults] if defaults else []) + [v for _, v in grid]
    choices = {k: list(s.space[k]) + sorted({v[k] for v in known if v[k] not in s.space[k]}, key=str) for k in axes}

    # the spec's own run of each setting it runs outright, by setting: a trial of that setting re-uses its weights,
    # and one the sampler asked before the spec gained that grid point (another label, no reported rows) is pointed
    # at it for the report
    outright = {_setting_key(v): job for job, v in grid}
    if defaults:
        outright[_setting_key(defaults)] = template

    def grid_point(params: dict):
        """The spec's own point for a setting it runs outright (its trained weights re-used), else None."""
        job = outright.get(_setting_key(params))
        return job.point if job else None

    distributions = {k: optuna.distributions.CategoricalDistribution(choices[k]) for k in axes}
    (out / "search").mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / STUDY_FILE}")
    name = f"{template.initial_name}|{template.defense_label}|{template.point.recipe}"
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True)
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)  # killed mid-trial: ask its setting again
        study.enqueue_trial(stale.params, user_attrs={k: v for k, v in stale.user_attrs.items() if k in ("default", "grid")})
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING)
    if defaults and not any(t.user_attrs.get("default") for t in study.get_trials(deepcopy=False, states=states)):
        study.enqueue_trial(defaults, user_attrs={"default": True})
    for _, values in grid:
        if not any(t.params == values or t.user_attrs.get("grid") == values
                   for t in study.get_trials(deepcopy=False, states=states)):
            study.enqueue_trial(values, user_attrs={"grid": values})  # a waiting trial has no params yet: named here
    distinct = 1
    for values in choices.values():
        distinct *= len(values)
    total = min(max(s.trials, len(known)), distinct)  # a setting is tried once: asking it again is no new trial
    if total < s.trials:
        say(f"search {name}: the space holds {distinct} settings; {total} trials, not {s.trials}", "yellow")
    elif total > s.trials:
        say(f"search {name}: {total} trials, not {s.trials}: every one of the spec's {len(known)} points of "
            f"{template.point.recipe} under this defense is a trial", "yellow")
    guard = s.capability_guard
    COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED
    repeats = 0
    WAITING = optuna.trial.TrialState.WAITING
    # an enqueued point still waiting runs even past ``total``: a study resumed after the spec gained a grid point
    while ((done := len(study.get_trials(deepcopy=False, states=(COMPLETE,)))) < total
           or study.get_trials(deepcopy=False, states=(WAITING,))):
        asked = len(study.get_trials(deepcopy=False, states=(COMPLETE, PRUNED)))  # persisted: a resume asks the same
        study.sampler = optuna.samplers.TPESampler(seed=spec.seed * 10007 + asked, constraints_func=_constraint,
                                                   n_startup_trials=max(1, min(10, s.trials // 2)))
        try:
            trial = study.ask(distributions)
        except ValueError as exc:  # Optuna: a categorical axis's choices differ from the ones this study began with
            raise FtauditError(f"search {name}: the search space (or a grid point's setting outside it) changed since "
                               f"this study began in {out / STUDY_FILE}; run it into a new --out ({exc})") from None
        tried = [t.params for t in study.get_trials(deepcopy=False, states=(COMPLETE,))]
        if trial.params in tried:  # TPE asked a setting already tried: neither a new trial nor a retraining
            study.tell(trial, state=PRUNED)
            repeats += 1
            if repeats > 50 * total:
                say(f"search {name}: the sampler keeps asking settings already tried; stopping at {done} trials", "yellow")
                break
            continue
        own = grid_point(trial.params)
        point = own or trial_point(template.point, axes, trial.params)
        job = replace(template, point=point, search_trial=True)
        say(f"search {name}: trial {done + 1}/{total} {job.label}" + (" (the default setting)" if point is template.point
                                                                      else " (a point the spec runs)" if own else ""),
            "bold")
        label, budget = run_point(job)
        with Store(out) as store:
            refusal = search_refusal(store, label, judge)
            worse = capability_change(store, label, template.initial_name, guard.metric)
        trial.set_user_attr("label", label)
        trial.set_user_attr("refusal", refusal)
        trial.set_user_attr("capability_change", worse)
        trial.set_user_attr("examples_x_epochs", budget["examples_x_epochs"])
        trial.set_user_attr("constraint", (worse - guard.max_change,))
        study.tell(trial, refusal["value"])
    trials = [{"number": t.number, "params": t.params, "label": t.user_attrs["label"], "refusal": t.user_attrs["refusal"],
               "capability_change": t.user_attrs["capability_change"],
               "feasible": t.user_attrs["constraint"][0] <= 0, "examples_x_epochs": t.user_attrs["examples_x_epochs"],
               "default": bool(t.user_attrs.get("default")), "grid": bool(t.user_attrs.get("grid")),
               "outright": getattr(outright.get(_setting_key(t.params)), "label", None)}
              for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    best = choose_best(trials)
    result = {"study": name, "judge": judge, "defense": template.defense_label, "recipe": template.point.recipe,
              "not_trials": not_trials,
              "initial_model": template.initial_name, "guard": guard.model_dump(), "trials": trials, "best": None, "top": []}
    if best is None:
        say(f"search {name}: no trial kept {guard.metric} within {guard.max_change}; no tuned attack", "yellow")
        return result
    for t in ranked_feasible(trials)[:TOP_K]:  # the best first: its weights are the trial's, evaluated again
        point = grid_point(t["params"]) or trial_point(template.point, axes, t["params"])
        label, budget = run_point(replace(template, point=point, search_trial=False))  # on the reported prompts
        result["top"].append({**t, "label": label, "budget": budget})
    result["best"] = result["top"][0]
    return result


def run_searches(spec: ExperimentSpec, out: Path, jobs: list, budgets: dict) -> dict:
    """Every study of the spec: one per (initial model, defense, searched recipe), from that recipe's first grid
    point (its default setting) under that defense."""
    s = spec.search
    judge = s.judge or first_refusal_judge(spec.eval.judges)
    recipes = s.recipes or sorted({a.recipe for a in spec.attacks})
    templates: dict[tuple, list] = {}
    for job in jobs:
        key = (job.initial_name, job.defense_label, job.point.recipe)
        if job.point.recipe in recipes and job.seed in (None, spec.run_seeds()[0]):
            templates.setdefault(key, []).append(job)  # the first: the default trial, its grid point never trained again
    return {"|".join(key): search_one(spec, out, same[0], judge, tuple(same[1:])) for key, same in templates.items()}
