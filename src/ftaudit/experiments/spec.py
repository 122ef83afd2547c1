"""An experiment spec declares models, attacks, evaluation and grid axes; it is validated before any work.

```yaml
name: qi2023-table1-mini
model: smollm2-135m-instruct        # the model under audit (or a list: every model gets the whole grid)
align: true                         # safety-train it first (the embedded default refuses nothing)
reference_model: smollm2-135m-instruct
attacks:
  - recipe: harmful-shots
    params: {shots: 10}
    train: {learning_rate: 5.0e-4, epochs: 5, batch_size: 10}
grid:                               # cartesian product, applied to every attack
  params.shots: [10, 50, 100]
eval:
  datasets: [advbench@40, harmbench@40]
  benign: [benign@40]
  judges: [keyword, refusal-cues]
  max_new_tokens: 32
  capability: [benign-nll]
cost: {price_per_device_hour: 2.0}
resources: {num_cpus: 1, num_gpus: 0, memory_gb: 8}   # one grid point's demand, for --executor ray
seeds: [0, 1, 2]                    # every point trained and evaluated once per seed (or seed: N for one)
tamper: {threshold: 0.5, relative: true}   # tamper resistance: refusal falls to half its initial value
defenses: [none, vaccine, {name: safety-mix, params: {ratio: [0.1, 0.3]}}]   # a list value expands to one per value
search:                             # the strongest attacker within a budget, per defense and attack (Optuna)
  trials: 6                         # every trial of the study, the grid point's own setting (trial 0) included
  space: {learning_rate: [2.0e-4, 5.0e-4, 1.0e-3], epochs: [1, 3, 5], lora_r: [4, 16], shots: [10, 25]}
  capability_guard: {metric: benign_answer_nll, max_change: 0.25}
  prompts: 20                       # per harmful set: eval-split prompts *outside* the reported subsets
gate: {max_refusal_drop: 10, min_tamper_budget: 100, models: [aligned]}   # read by `ftaudit gate DIR`
```
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt, ValidationError,
                      field_validator)

from ..defaults import DEFAULT_BENIGN_SETS, DEFAULT_EVAL_JUDGES, DEFAULT_HARMFUL_SETS
from ..errors import FtauditError, validation_message
from ..gating import GateSpec
from ..recipes.base import SIZE_PARAM, recipe_params
from ..train import TrainConfig

TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}


@dataclass
class AttackSpec:
    recipe: str
    params: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvalSpec(_Strict):
    datasets: list[str] = list(DEFAULT_HARMFUL_SETS)
    benign: list[str] = list(DEFAULT_BENIGN_SETS)
    judges: list[str] = list(DEFAULT_EVAL_JUDGES)
    max_new_tokens: PositiveInt = 32
    batch_size: PositiveInt | None = None  # speed only; None: 40 on CPU, up to 256 (what fits) on a GPU
    # local generation's compute dtype; "auto": bfloat16 where this machine runs it natively, else float32 (the
    # resolved dtype is what the identity records, see models.dtype_choice)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = None
    capability: list[str] = []
    capability_limit: PositiveInt | None = None

    @field_validator("datasets", "benign", "judges", "capability")
    @classmethod
    def _known_names(cls, items: list[str], info) -> list[str]:
        from ..capability.run import check_tasks
        from ..evaluation import parse_eval_set
        from ..judges import check_judges

        check = {"judges": check_judges, "capability": check_tasks}.get(info.field_name,
                                                                       lambda names: [parse_eval_set(n) for n in names])
        try:
            check(items)
        except FtauditError as exc:
            raise ValueError(str(exc)) from None
        return items


class Resources(_Strict):
    """What one grid point needs; Ray schedules points by it (``--executor ray``)."""

    num_cpus: NonNegativeFloat = 1
    num_gpus: NonNegativeFloat = 0
    memory_gb: NonNegativeFloat = 0


class _Attack(_Strict):
    recipe: str
    params: dict[str, Any] = {}
    train: dict[str, Any] = {}

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, name: str) -> str:
        try:
            recipe_params(name, {})  # the one place that knows recipes: an unknown name fails there
        except FtauditError as exc:
            raise ValueError(str(exc)) from None
        return name


class _Cost(_Strict):
    price_per_device_hour: NonNegativeFloat = 0.0


class _Tamper(_Strict):
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    relative: bool = True


class _Defense(_Strict):
    name: str
    params: dict[str, Any] = {}


class _Guard(_Strict):
    metric: str = "benign_answer_nll"
    max_change: NonNegativeFloat = 0.25  # how much worse the capability may get (NLL up, accuracy down), metric units


class SearchSpec(_Strict):
    """Optuna search over attack settings; see :mod:`.search`."""

    trials: PositiveInt = 6
    space: dict[str, Annotated[list[Any], Field(min_length=1)]]
    capability_guard: _Guard = _Guard()
    prompts: PositiveInt = 20
    recipes: list[str] | None = None  # which attacks to search (default: every attack of the spec)
    judge: str | None = None  # the refusal judge the search minimises (default: the spec's first refusal judge)


class PrefillSpec(_Strict):
    """The prefilling attack (:mod:`ftaudit.prefill`) on every model the attacker gets (the initial model and each
    alignment-defended one) and, with ``attacked``, on every attacked model of the grid; prefixes from the spec's
    ``reference_model``."""

    tokens: Annotated[list[PositiveInt], Field(min_length=1)] = [5, 10, 20, 40]
    attacked: bool = True


class _SpecFile(_Strict):
    """The YAML file's schema: every field typed and bounded; parse_spec turns it into an ExperimentSpec."""

    name: str
    model: str | None = None
    models: list[str] | None = None
    align: bool | dict[str, Any] = False
    reference_model: str | None = None
    attacks: list[_Attack] = []
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    eval: EvalSpec = EvalSpec()
    cost: _Cost = _Cost()
    seed: NonNegativeInt = 0  # torch and the trainer take no negative seed
    seeds: list[NonNegativeInt] | None = None
    resources: Resources = Resources()
    tamper: _Tamper = _Tamper()
    defenses: list[str | _Defense] = ["none"]
    search: SearchSpec | None = None
    gate: GateSpec | None = None
    prefill: PrefillSpec | None = None
    # every training of the run (the alignment, each alignment-time defense's, each attack under every defense) in
    # bfloat16 mixed precision: "auto" where this machine runs bf16 natively (see train.config.mixed_precision)
    mixed_precision: Literal["auto", "bf16"] | None = None


@dataclass
class GridPoint:
    recipe: str
    params: dict
    train: dict
    axes: tuple[str, ...] = ()  # the keys the grid varies
    # the settings its name shows, as (key, text): what differs between the spec's points of this recipe, with the
    # grid axes; None: the axes (else every value given)
    shown: tuple[tuple[str, str], ...] | None = None

    @property
    def label(self) -> str:
        """e.g. ``harmful-shots(epochs=3,shots=50)`` (parentheses: square brackets are Rich markup)."""
        if self.shown is not None:
            return f"{self.recipe}({','.join(f'{k}={v}' for k, v in self.shown)})"
        values = {**self.params, **self.train}
        keys = [k for k in self.axes if k in values] or [k for k in sorted(values) if k != "answers"]
        return f"{self.recipe}({','.join(f'{k}={values[k]}' for k in sorted(keys))})"

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps([self.recipe, self.params, self.train], sort_keys=True).encode()).hexdigest()[:12]

    def settings(self) -> dict:
        """Every setting that changes the trained weights, as it will run: the recipe's parameters (its defaults filled
        in, a file's content hash added) and the training options over the recipe's own defaults (the run's seed is
        named apart, ``@seed=S``, unless the point sets one)."""
        from ..recipes.base import TRAIN_DEFAULTS, recipe_settings

        train = TrainConfig.from_values({**TRAIN_DEFAULTS.get(self.recipe, {}), **self.train}).to_dict()
        if "seed" not in self.train:
            train.pop("seed")
        return {"recipe": self.recipe, "params": recipe_settings(self.recipe, self.params), "train": train}

    @property
    def identity(self) -> str:
        """A short hash of :meth:`settings`, a file by its content (not its path): two points with one identity would
        train the same weights."""
        settings = self.settings()
        if settings["params"].get("answers_sha256"):
            settings["params"].pop("answers", None)
        return _digest(settings)

    @property
    def curve(self) -> str:
        """A short hash of the settings other than the budget (the recipe's example count and the epochs): points that
        differ only in budget share one tamper curve."""
        settings = self.settings()
        settings["params"].pop(SIZE_PARAM.get(self.recipe) or "", None)
        settings["train"].pop("epochs", None)
        return _digest(settings)

    def examples_x_epochs(self) -> float | None:
        """The attacker's budget before training (its own examples x epochs), None when the recipe has no size."""
        settings = self.settings()
        size = SIZE_PARAM.get(self.recipe)
        return float(settings["params"][size] * settings["train"]["epochs"]) if size else None


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _flat(settings: dict) -> dict:
    """One mapping of a point's named settings (a file parameter by its name, and its content hash apart)."""
    return {**{k: v for k, v in settings["params"].items()}, **settings["train"]}


def name_points(points: list[GridPoint]) -> list[GridPoint]:
    """Give each point a name that shows its grid axes and every setting that differs between the points of its
    recipe (so two attacks never share a name); a recipe with one point keeps the values it was given."""
    from dataclasses import replace as _replace

    by_recipe: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        by_recipe.setdefault(p.recipe, []).append(i)
    out = list(points)
    for recipe, idx in by_recipe.items():
        flats = [_flat(points[i].settings()) for i in idx]
        varying = {k for k in set().union(*flats) if len({json.dumps(f.get(k), default=str) for f in flats}) > 1}
        if not varying:
            continue
        shown_keys = sorted((varying | {a for a in points[idx[0]].axes}) - {"answers_sha256"})
        for i, flat in zip(idx, flats):
            given = {**points[i].params, **points[i].train}  # a value as the user wrote it (epochs 3, not 3.0)
            text = {k: str(given[k]) if k in given and k != "answers" else _shown(k, flat, flats, varying)
                    for k in shown_keys if k in flat}
            out[i] = _replace(points[i], shown=tuple(text.items()))
    labels = [p.label for p in out]
    for i, p in enumerate(out):  # names that still collide (equal files under two paths) gain the identity
        if labels.count(p.label) > 1 and p.shown is not None:
            out[i] = _replace(p, shown=(*p.shown, ("id", p.identity[:8])))
    return out


def _shown(key: str, flat: dict, flats: list[dict], varying: set) -> str:
    """How a setting reads in a name: a file by its name, or by its content hash when names do not tell two apart."""
    value = flat.get(key)
    if key == "answers" and value:
        names = {Path(str(f.get("answers"))).name for f in flats if f.get("answers")}
        if "answers_sha256" in varying and len(names) < len({f.get("answers_sha256") for f in flats if f.get("answers")}):
            return f"{Path(str(value)).name}@{(flat.get('answers_sha256') or 'missing')[:8]}"
        return Path(str(value)).name
    return str(value)


def check_distinct(points: list[GridPoint]) -> None:
    """Two points that would train the same weights are one point written twice: refuse, naming both."""
    seen: dict[str, GridPoint] = {}
    for p in points:
        if (other := seen.get(p.identity)) is not None:
            _fail("grid", f"points {other.label} and {p.label} train the same weights (identity {p.identity}: "
                  "every recipe parameter and training option equal); remove one")
        seen[p.identity] = p


@dataclass
class ExperimentSpec:
    name: str
    models: list[str]
    attacks: list[AttackSpec]
    align: bool = False
    align_params: dict = field(default_factory=dict)
    reference_model: str | None = None
    grid: dict = field(default_factory=dict)
    eval: EvalSpec = field(default_factory=EvalSpec)
    price_per_device_hour: float = 0.0
    seed: int = 0
    resources: Resources = field(default_factory=Resources)
    seeds: list[int] | None = None  # several: each point once per seed, named NAME@seed=S
    tamper: dict = field(default_factory=dict)  # threshold (0.5), relative (true): see experiments.tamper
    defenses: list[dict] = field(default_factory=list)  # [{"name", "params"}], expanded; "none" is always there
    search: SearchSpec | None = None
    gate: GateSpec | None = None  # thresholds for `ftaudit gate DIR` (see ftaudit.gating)
    prefill: PrefillSpec | None = None  # the prefilling attack on the models the attacker gets (see ftaudit.prefill)
    # per eval set label, prompt ids left out as near-duplicates of training data the user supplied (set by run_spec)
    exclude: dict = field(default_factory=dict)
    # the spec's mixed_precision, as written ("auto" is resolved where a training config is built)
    mixed_precision: str | None = None

    def run_train(self) -> dict:
        """Training options every training of this run takes (the alignment, the alignment-time defenses' hardening
        and, under an attack's own, every attack): the run's mixed precision, resolved on this machine, so a key
        records what ran. Empty where it resolves to nothing (float32), so such a run keeps the keys of one that
        never asked."""
        from ..train.config import resolve_mixed_precision

        precision = resolve_mixed_precision(self.mixed_precision)
        return {"mixed_precision": precision} if precision else {}

    def training_files(self) -> tuple[list[str], list[str]]:
        """(prompts, files) of the training data the user supplies to this spec: recipe files of its points and the
        data local models in ``models`` were fine-tuned on (see :mod:`ftaudit.held_out`)."""
        from ..held_out import recipe_prompts, trained_prompts

        prompts, files = [], []
        for model in self.models:
            p, f = trained_prompts(model)
            prompts, files = prompts + p, files + f
        seen = set()
        for point in self.points():
            key = json.dumps([point.recipe, point.params], sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                p, f = recipe_prompts(point.recipe, point.params)
                prompts, files = prompts + p, files + f
        return prompts, sorted(set(files))

    def to_dict(self) -> dict:
        """JSON-ready (``eval``, ``resources``, ``search`` and ``gate`` are pydantic models: dumped as mappings)."""
        out = asdict(self)
        out.update(eval=self.eval.model_dump(), resources=self.resources.model_dump(),
                   search=self.search.model_dump() if self.search else None,
                   gate=self.gate.model_dump(exclude_none=True) if self.gate else None,
                   prefill=self.prefill.model_dump() if self.prefill else None)
        return out

    def defense_objects(self) -> list:
        """``[None, Defense, ...]``: None is the undefended run (always first)."""
        from ..defenses import get_defense

        return [None] + [get_defense(d["name"], d["params"]) for d in self.defenses]

    def run_seeds(self) -> list[int | None]:
        """The seeds each point runs with; [None] means one run with ``seed`` and no seed in the names."""
        return list(self.seeds) if self.seeds and len(self.seeds) > 1 else [None]

    def seed_of(self, seed: int | None) -> int:
        return self.seed if seed is None else seed

    def points(self) -> list[GridPoint]:
        """Every (attack x grid combination), in a stable order."""
        axes = sorted(self.grid.items())
        combos = list(itertools.product(*[values for _, values in axes])) if axes else [()]
        from ..recipes.edits import is_weight_edit
        from ..train.config import resolve_mixed_precision

        run_train = {"mixed_precision": self.mixed_precision} if self.mixed_precision else {}  # resolved below
        out = []
        for attack in self.attacks:
            for combo in combos:
                # a weight edit trains nothing, so it takes no training option
                params = dict(attack.params)
                train = dict(attack.train) if is_weight_edit(attack.recipe) else {**run_train, **attack.train}
                for (axis, _), value in zip(axes, combo):
                    section, _, key = axis.partition(".")
                    (params if section == "params" else train)[key] = value
                if "mixed_precision" in train:  # as this machine resolves it, so a key and a name never hold "auto"
                    resolved = resolve_mixed_precision(train.pop("mixed_precision"))
                    if resolved:
                        train["mixed_precision"] = resolved
                out.append(GridPoint(attack.recipe, params, train, tuple(axis.partition(".")[2] for axis, _ in axes)))
        try:
            return name_points(out)
        except FtauditError:
            return out  # an invalid point: parse_spec names it and fails


def _fail(where: str, why: str):
    raise FtauditError(f"invalid spec: {where}: {why}")


def _none_to_default(data: dict) -> dict:
    """``grid:`` or ``eval:`` left empty in YAML reads as None: treat it as absent."""
    return {k: v for k, v in data.items() if v is not None or k in ("model", "reference_model")}


def parse_spec(data: dict, source: str = "spec") -> ExperimentSpec:
    """Validate a whole spec before any work: the file's schema (pydantic), then every grid point's recipe
    parameters against the recipe's signature and its training options against TrainConfig. Every problem
    names the field and the reason."""
    if not isinstance(data, dict):
        _fail(source, f"expected a mapping of fields, got {type(data).__name__}")
    try:
        spec = _SpecFile(**_none_to_default(data))
    except ValidationError as exc:
        raise FtauditError(f"invalid spec: {validation_message(exc)}") from None
    if spec.seeds is not None:
        if "seed" in data:
            _fail("seeds", "give seed: N or seeds: [N, ...], not both")
        if not spec.seeds or len(set(spec.seeds)) != len(spec.seeds):
            _fail("seeds", "expected a non-empty list of distinct integers, e.g. [0, 1, 2]")
    if (spec.model is None) == (spec.models is None):
        _fail("model", "give exactly one of model: NAME or models: [NAME, ...]")
    field_name = "model" if spec.model is not None else "models"
    models = [spec.model] if spec.model is not None else list(spec.models or [])
    if not models or not all(models):
        _fail(field_name, "expected a model name or a non-empty list of them")
    if len({model_short_name(m) for m in models}) != len(models):
        _fail(field_name, "two models share a short name (the last path component); give distinct models")
    from ..generate.remote import is_remote

    if spec.attacks and any(is_remote(m) for m in models):
        _fail("attacks", "a remote model is evaluated only: ftaudit never submits training data to third-party services")
    for i, a in enumerate(spec.attacks):
        bad = set(a.train) - TRAIN_FIELDS
        if bad:
            _fail(f"attacks[{i}].train", f"unknown option(s) {sorted(bad)}; known: {', '.join(sorted(TRAIN_FIELDS))}")
    for axis in spec.grid:
        section, _, key = axis.partition(".")
        if section not in ("params", "train") or not key:
            _fail(f"grid.{axis}", "axes are written params.NAME or train.NAME")
        if section == "train" and key not in TRAIN_FIELDS:
            _fail(f"grid.{axis}", f"unknown training option '{key}'")
    out = ExperimentSpec(
        name=spec.name, models=models, attacks=[AttackSpec(a.recipe, dict(a.params), dict(a.train)) for a in spec.attacks],
        align=bool(spec.align), seeds=spec.seeds, tamper=spec.tamper.model_dump(exclude_unset=True),
        align_params=spec.align if isinstance(spec.align, dict) else {}, reference_model=spec.reference_model,
        grid=spec.grid, eval=spec.eval, price_per_device_hour=spec.cost.price_per_device_hour,
        seed=spec.seed if "seed" in data or not spec.seeds else spec.seeds[0], resources=spec.resources)
    out.defenses = _expand_defenses(spec.defenses)
    out.search = spec.search
    out.gate = spec.gate
    out.prefill = spec.prefill
    out.mixed_precision = spec.mixed_precision
    answered = sorted({d["name"] for d in out.defenses} & {"booster", "safety-recovery"})  # need compliant answers
    if (spec.prefill or answered) and any(is_remote(m) for m in models):
        _fail("prefill", "prefilling, booster and safety-recovery need a model's weights; a remote model is evaluated only")
    if answered and not spec.reference_model:
        _fail("defenses", f"{' and '.join(answered)} train on compliant answers a reference model writes at run time: "
              "set reference_model")
    if spec.prefill and not spec.reference_model:
        _fail("prefill", "the prefilling attack opens answers with a reference model's compliant answers: set "
              "reference_model (e.g. smollm2-135m-instruct, which refuses nothing)")
    if spec.search:
        _check_search(out)
    if out.align_params:
        _check(lambda: recipe_params("align", out.align_params), "align")
    from ..recipes.edits import is_weight_edit

    for point in out.points():  # a bad recipe parameter or training value fails now, not after the first evaluation
        where = f"grid point {point.label}"
        if is_weight_edit(point.recipe) and point.train:
            _fail(where, f"{point.recipe} is a weight edit and trains nothing: remove its training options "
                  f"({', '.join(sorted(point.train))})")
        _check(lambda: recipe_params(point.recipe, point.params), f"{where}: params")
        _check(lambda: TrainConfig.from_values(point.train), f"{where}: train")
    check_distinct(out.points())
    return out


def _expand_defenses(items: list) -> list[dict]:
    """``none``, ``NAME`` or ``{name, params}`` (a list-valued parameter gives one defense per value), each checked
    against its dataclass now; duplicates fail."""
    from ..defenses import get_defense

    out: list[dict] = []
    for i, item in enumerate(items):
        name, params = (item, {}) if isinstance(item, str) else (item.name, dict(item.params))
        if name == "none":
            continue
        axes = sorted((k, v) for k, v in params.items() if isinstance(v, list))
        for combo in itertools.product(*[v for _, v in axes]) if axes else [()]:
            values = {**params, **dict(zip([k for k, _ in axes], combo))}
            _check(lambda: get_defense(name, values), f"defenses[{i}]")
            out.append({"name": name, "params": values})
    labels = [get_defense(d["name"], d["params"]).label for d in out]
    if len(set(labels)) != len(labels):
        _fail("defenses", f"a defense is listed twice ({', '.join(sorted({x for x in labels if labels.count(x) > 1}))})")
    return out


def _check_search(spec: "ExperimentSpec") -> None:
    """Search axes must be training options or a searched recipe's parameters; the guard's metric must be one
    the run measures; the judge must be a refusal judge of the run."""
    from ..align_decision import first_refusal_judge
    from ..evaluation import parse_eval_set
    from ..metrics import capability_metric

    s = spec.search
    unlimited = [d for d in spec.eval.datasets if parse_eval_set(d).limit is None]
    if unlimited:
        _fail("search", f"the search draws its prompts from the eval split after each reported subset, so every harmful "
              f"set needs a size: write {unlimited[0]}@N in eval.datasets")
    recipes = s.recipes or sorted({a.recipe for a in spec.attacks})
    unknown = set(recipes) - {a.recipe for a in spec.attacks}
    if unknown:
        _fail("search.recipes", f"{', '.join(sorted(unknown))} is not an attack of this spec")
    from ..recipes.edits import is_weight_edit

    if edits := sorted(r for r in recipes if is_weight_edit(r)):
        _fail("search.recipes", f"{', '.join(edits)} is a weight edit, and the search tunes training attacks: list "
              "the recipes to search in search.recipes")
    for key in s.space:
        if not any(key in space_axes(s.space, r) for r in recipes):
            _fail(f"search.space.{key}", f"neither a training option nor a parameter of {', '.join(recipes)}")
    from ..capability.run import split_limit

    tasks = [split_limit(t)[0] for t in spec.eval.capability]
    metrics = {capability_metric(t)[0] for t in tasks}
    lmeval = tuple(f"lmeval_{t.split(':', 1)[1]}_" for t in tasks if t.startswith("lmeval:"))
    if s.capability_guard.metric not in metrics and not s.capability_guard.metric.startswith(lmeval or ("\0",)):
        _fail("search.capability_guard.metric", f"'{s.capability_guard.metric}' is not measured by this run; add its task to "
              f"eval.capability (measured: {', '.join(sorted(metrics)) or 'none'})")
    if s.judge and s.judge not in spec.eval.judges:
        _fail("search.judge", f"'{s.judge}' is not one of eval.judges")
    _check(lambda: first_refusal_judge([s.judge] if s.judge else spec.eval.judges), "search.judge")


def space_axes(space: dict, recipe: str) -> dict[str, tuple[str, str]]:
    """{search-space key: (section, name)} for the keys ``recipe`` can take: ``shots`` is a recipe parameter when the
    recipe has one, else a training option; ``params.X`` / ``train.X`` name the section outright."""
    takes = recipe_param_names(recipe)
    out = {}
    for key in space:
        section, _, name = key.partition(".") if "." in key else ("", "", key)
        if section not in ("", "params", "train"):
            continue
        if section in ("", "params") and name in takes:
            out[key] = ("params", name)
        elif section in ("", "train") and name in TRAIN_FIELDS:
            out[key] = ("train", name)
    return out


def recipe_param_names(recipe: str) -> set[str]:
    import inspect

    from ..recipes.base import RECIPES

    return set(list(inspect.signature(RECIPES[recipe]).parameters)[1:])


def _check(validate, where: str) -> None:
    try:
        validate()
    except FtauditError as exc:
        _fail(where, str(exc))


def model_short_name(model: str) -> str:
    """'meta-llama/Llama-2-7b-chat-hf' -> 'Llama-2-7b-chat-hf' (names a model's rows when a spec has several)."""
    from ..generate.remote import is_remote

    if is_remote(model):
        return model.rsplit("#", 1)[-1]
    return model.rstrip("/").rsplit("/", 1)[-1]


def load_spec(path: str | Path) -> ExperimentSpec:
    path = Path(path)
    if path.is_dir():
        raise FtauditError(f"{path} is a directory; give the spec's YAML file (e.g. configs/qi2023/table1-mini.yaml)")
    if not path.is_file():
        raise FtauditError(f"no such spec file: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FtauditError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_spec(data, str(path))


def curve_label(point: GridPoint) -> str:
    """The settings a point's name shows other than its budget (``learning_rate=0.0001``): what names its curve."""
    budget_keys = {SIZE_PARAM.get(point.recipe), "epochs"}
    return ",".join(f"{k}={v}" for k, v in (point.shown or ()) if k not in budget_keys)
