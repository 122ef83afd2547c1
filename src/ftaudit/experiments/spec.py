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
  judges: [keyword]
  max_new_tokens: 32
  capability: [benign-nll]
cost: {price_per_device_hour: 2.0}
resources: {num_cpus: 1, num_gpus: 0, memory_gb: 8}   # one grid point's demand, for --executor ray
seeds: [0, 1, 2]                    # every point trained and evaluated once per seed (or seed: N for one)
tamper: {threshold: 0.5, relative: true}   # tamper resistance: refusal falls to half its initial value
```
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from ..errors import FtauditError
from ..recipes import RECIPES
from ..train import TrainConfig

TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}


@dataclass
class AttackSpec:
    recipe: str
    params: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


@dataclass
class EvalSpec:
    datasets: list[str] = field(default_factory=lambda: ["advbench@40", "harmbench@40"])
    benign: list[str] = field(default_factory=lambda: ["benign@40"])
    judges: list[str] = field(default_factory=lambda: ["keyword"])
    max_new_tokens: int = 32
    batch_size: int = 40
    capability: list[str] = field(default_factory=list)
    capability_limit: int | None = None


@dataclass
class Resources:
    """What one grid point needs; Ray schedules points by it (``--executor ray``)."""

    num_cpus: float = 1
    num_gpus: float = 0
    memory_gb: float = 0


@dataclass
class GridPoint:
    recipe: str
    params: dict
    train: dict
    axes: tuple[str, ...] = ()  # the keys the grid varies; they name the point

    @property
    def label(self) -> str:
        """e.g. ``harmful-shots(epochs=3,shots=50)`` (parentheses: square brackets are Rich markup)."""
        values = {**self.params, **self.train}
        keys = [k for k in self.axes if k in values] or [k for k in sorted(values) if k != "answers"]
        return f"{self.recipe}({','.join(f'{k}={values[k]}' for k in sorted(keys))})"

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps([self.recipe, self.params, self.train], sort_keys=True).encode()).hexdigest()[:12]


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

    def run_seeds(self) -> list[int | None]:
        """The seeds each point runs with; [None] means one run with ``seed`` and no seed in the names."""
        return list(self.seeds) if self.seeds and len(self.seeds) > 1 else [None]

    def seed_of(self, seed: int | None) -> int:
        return self.seed if seed is None else seed

    def points(self) -> list[GridPoint]:
        """Every (attack x grid combination), in a stable order."""
        axes = sorted(self.grid.items())
        combos = list(itertools.product(*[values for _, values in axes])) if axes else [()]
        out = []
        for attack in self.attacks:
            for combo in combos:
                params, train = dict(attack.params), dict(attack.train)
                for (axis, _), value in zip(axes, combo):
                    section, _, key = axis.partition(".")
                    (params if section == "params" else train)[key] = value
                out.append(GridPoint(attack.recipe, params, train, tuple(axis.partition(".")[2] for axis, _ in axes)))
        return out


def _fail(where: str, why: str):
    raise FtauditError(f"invalid spec: {where}: {why}")


def _expect(value, kind, where: str):
    if not isinstance(value, kind):
        _fail(where, f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def parse_spec(data: dict, source: str = "spec") -> ExperimentSpec:
    """Validate a spec dictionary; every problem names the field and the reason."""
    _expect(data, dict, source)
    known = {"name", "model", "models", "align", "reference_model", "attacks", "grid", "eval", "cost", "seed", "seeds",
             "resources", "tamper"}
    for key in data:
        if key not in known:
            _fail(key, f"unknown field; known: {', '.join(sorted(known))}")
    if "name" not in data:
        _fail("name", "required")
    if ("model" in data) == ("models" in data):
        _fail("model", "give exactly one of model: NAME or models: [NAME, ...]")
    field_name = "model" if "model" in data else "models"
    models = data[field_name] if isinstance(data[field_name], list) else [data[field_name]]
    if not models or not all(isinstance(m, str) and m for m in models):
        _fail(field_name, "expected a model name or a non-empty list of them")
    if len({model_short_name(m) for m in models}) != len(models):
        _fail(field_name, "two models share a short name (the last path component); give distinct models")
    from ..generate.remote import is_remote

    if data.get("attacks") and any(is_remote(m) for m in models):
        _fail("attacks", "a remote model is evaluated only: ftaudit never submits training data to third-party services")
    attacks = []
    for i, a in enumerate(_expect(data.get("attacks") or [], list, "attacks")):
        where = f"attacks[{i}]"
        _expect(a, dict, where)
        if a.get("recipe") not in RECIPES:
            _fail(f"{where}.recipe", f"unknown recipe {a.get('recipe')!r}; known: {', '.join(sorted(RECIPES))}")
        bad = set(_expect(a.get("train", {}), dict, f"{where}.train")) - TRAIN_FIELDS
        if bad:
            _fail(f"{where}.train", f"unknown option(s) {sorted(bad)}")
        attacks.append(AttackSpec(a["recipe"], dict(_expect(a.get("params", {}), dict, f"{where}.params")), dict(a.get("train", {}))))
    grid = _expect(data.get("grid", {}) or {}, dict, "grid")
    for axis, values in grid.items():
        section, _, key = axis.partition(".")
        if section not in ("params", "train") or not key:
            _fail(f"grid.{axis}", "axes are written params.NAME or train.NAME")
        if section == "train" and key not in TRAIN_FIELDS:
            _fail(f"grid.{axis}", f"unknown training option '{key}'")
        if not isinstance(values, list) or not values:
            _fail(f"grid.{axis}", "expected a non-empty list of values")
    ev = _expect(data.get("eval", {}) or {}, dict, "eval")
    ev_known = {f.name for f in fields(EvalSpec)}
    for key in ev:
        if key not in ev_known:
            _fail(f"eval.{key}", f"unknown field; known: {', '.join(sorted(ev_known))}")
    from ..evaluate import parse_eval_set
    from ..judges import JUDGES

    for key in ("datasets", "benign"):
        for item in ev.get(key, []):
            es = parse_eval_set(item)
            from ..data.registry import DATASETS

            if es.name not in DATASETS and not Path(es.name).is_file():
                _fail(f"eval.{key}", f"unknown dataset '{es.name}'")
    for j in ev.get("judges", []):
        if j not in JUDGES:
            _fail("eval.judges", f"unknown judge '{j}'")
    align = data.get("align", False)
    cost = _expect(data.get("cost", {}) or {}, dict, "cost")
    res = _expect(data.get("resources", {}) or {}, dict, "resources")
    for key, value in res.items():
        if key not in {f.name for f in fields(Resources)}:
            _fail(f"resources.{key}", "unknown field; known: memory_gb, num_cpus, num_gpus")
        if not isinstance(value, (int, float)) or value < 0:
            _fail(f"resources.{key}", "expected a non-negative number")
    seeds = data.get("seeds")
    if seeds is not None:
        if "seed" in data:
            _fail("seeds", "give seed: N or seeds: [N, ...], not both")
        if not isinstance(seeds, list) or not seeds or not all(isinstance(x, int) for x in seeds) or len(set(seeds)) != len(seeds):
            _fail("seeds", "expected a non-empty list of distinct integers, e.g. [0, 1, 2]")
    tamper = _expect(data.get("tamper", {}) or {}, dict, "tamper")
    for key, value in tamper.items():
        if key not in ("threshold", "relative"):
            _fail(f"tamper.{key}", "unknown field; known: relative, threshold")
    if not 0 < float(tamper.get("threshold", 0.5)) < 1:
        _fail("tamper.threshold", "expected a number between 0 and 1")
    spec = ExperimentSpec(
        name=str(data["name"]), models=models, attacks=attacks, align=bool(align), seeds=seeds, tamper=tamper,
        align_params=align if isinstance(align, dict) else {}, reference_model=data.get("reference_model"), grid=grid,
        eval=EvalSpec(**ev), price_per_device_hour=float(cost.get("price_per_device_hour", 0.0)),
        seed=int(data.get("seed", seeds[0] if seeds else 0)),
        resources=Resources(**res))
    for point in spec.points():  # bad training values (lora_r: 0, distributed: fsdp2) fail now, not mid-grid
        try:
            TrainConfig(**point.train).validate()
        except (FtauditError, TypeError, ValueError) as exc:
            _fail(f"grid point {point.label}: train", str(exc))
    return spec


def model_short_name(model: str) -> str:
    """'meta-llama/Llama-2-7b-chat-hf' -> 'Llama-2-7b-chat-hf' (names a model's rows when a spec has several)."""
    from ..generate.remote import is_remote

    if is_remote(model):
        return model.rsplit("#", 1)[-1]
    return model.rstrip("/").rsplit("/", 1)[-1]


def load_spec(path: str | Path) -> ExperimentSpec:
    path = Path(path)
    if not path.is_file():
        raise FtauditError(f"no such spec file: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FtauditError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_spec(data, str(path))
