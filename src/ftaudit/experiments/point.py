"""One grid point as a job: train its attack (under its defense), evaluate and cost it, in this process or a worker.

The grid runner, the executors and the search all run points, so the point lives here, below all three."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from ..atomic import file_lock
from ..defenses import DefenseContext
from ..errors import FtauditError
from ..evaluation import eval_sets_from
from ..fine_tune import JobRejected
from ..generate import GenerationConfig
from ..pipeline import StageRunner, attack_budget, evaluate_system_twin
from ..attack_run import run_attack
from ..seeds import seed_name
from ..store import Store
from .spec import ExperimentSpec, GridPoint, curve_label


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
    def evaluated_dir(self) -> Path:
        """The weights the point is evaluated on (when its job ran): the repaired copy under a post-hoc defense, else
        what the attack trained."""
        d = self.defense_obj()
        return self.model_dir if d is not None and d.stage == "post-hoc" else self.train_dir

    @property
    def train_dir(self) -> Path:
        """Where the attack trains: a post-hoc defense repairs the undefended point's weights, so it shares them."""
        d = self.defense_obj()
        return Path(self.models_dir) / self._leaf() if d is None or not d.changes_training else self.model_dir


def slug(text: str) -> str:
    """A folder name for a label: ``safety-mix(ratio=0.1)`` -> ``safety-mix_ratio=0.1_``."""
    import re

    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)


def eval_sets(spec: ExperimentSpec):
    return [replace(s, exclude=tuple(spec.exclude.get(s.label, ()))) for s in eval_sets_from(spec.eval.datasets, spec.eval.benign)]


def search_sets(spec: ExperimentSpec):
    """The search's prompts: per harmful set, ``search.prompts`` eval-split prompts *after* the reported subset
    (disjoint from it, so the setting the search picks is reported on prompts it was not chosen on); the dataset is
    labelled ``NAME:search`` so its rows never pool with the reported ones."""
    from dataclasses import replace as _replace

    return [_replace(s, offset=s.limit or 0, limit=spec.search.prompts, role="search")
            for s in eval_sets(spec) if s.kind == "harmful"]


def generation_config(spec: ExperimentSpec) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=spec.eval.max_new_tokens, batch_size=spec.eval.batch_size, dtype=spec.eval.dtype)


def detach(job: PointJob) -> PointJob:
    """Give a Ray task its own store: a snapshot of the run's store in ``DIR/points/<initial model>-[<defense>-]<point key>``."""
    defended = "" if job.defense is None else f"{slug(job.defense_label)}-"
    point_dir = Path(job.out) / "points" / f"{job.initial_name}-{defended}{job.model_dir.name}"
    with Store(job.out) as store:
        store.snapshot_to(point_dir)
    return replace(job, store_dir=str(point_dir))


def merge(job: PointJob) -> None:
    with Store(job.out) as store:
        store.merge_from(Path(job.store_dir))


def run_point(job: PointJob) -> tuple[str, dict]:
    """Attack (under the job's defense), evaluate and cost one grid point (in this process or a Ray worker);
    returns (label, budget)."""
    spec, point, ev = job.spec, job.point, job.spec.eval
    store = Store(job.store_dir or job.out)
    stages = StageRunner(store)
    d = job.defense_obj()
    ctx = DefenseContext(store, job.initial, job.unaligned, spec.align_params, spec.seed_of(job.seed),
                         unaligned_from="align" if spec.align else "given", reference_model=spec.reference_model,
                         train=spec.run_train())
    in_training = d if d is not None and d.stage in ("data", "fine-tuning") else None
    evaluated, rejected, report = job.train_dir, None, None
    try:
        job.train_dir.parent.mkdir(parents=True, exist_ok=True)
        with stages(f"attack:{job.label}"), file_lock(job.train_dir, timeout=-1):  # post-hoc points share the undefended weights
            try:
                _, result = run_attack(store, point.recipe, job.initial, job.train_dir, model_name=job.initial_name,
                                       reference_model=spec.reference_model, params=point.params, overrides=point.train,
                                       seed=spec.seed_of(job.seed), display_name=job.label, defense=in_training,
                                       defense_ctx=ctx)
            except JobRejected as exc:  # the service trains nothing: the released model is what the attacker gets
                evaluated, rejected, result = job.initial, str(exc), None
        if d is not None and d.stage == "post-hoc":
            with stages(f"defend:{job.label}"):
                report = d.repair(ctx, job.train_dir, job.model_dir)
            evaluated = job.evaluated_dir
        sets = search_sets(spec) if job.search_trial else eval_sets(spec)
        stages.evaluate(job.label, seed_name(point.label, job.seed), str(evaluated), sets, generation_config(spec), ev.judges,
                        ev.capability, ev.capability_limit)
        twin = None if rejected else evaluate_system_twin(stages, job.initial_name, job.initial, job.train_dir,
                                                           point.recipe, sets, generation_config(spec), ev.judges)
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
    phases = job.train_dir / "lisa_phases.json"
    if phases.is_file():  # Lisa: how many steps trained the job at all (guide steps take user batches' places)
        budget["defense_report"] = {**(budget.get("defense_report") or {}), **json.loads(phases.read_text())}
    return job.label, budget
