"""Defense registry: a defense is a config dataclass registered by name, acting at one point of the pipeline.

Where a defense acts (``stage``):
  alignment    the publisher hardens the model before release: :meth:`Defense.harden` writes a new initial model
  data         the service screens what it trains on: :meth:`Defense.screen` filters the attack's records
  fine-tuning  the service controls training: :meth:`Defense.screen` adds to the records and/or
               :meth:`Defense.train_overrides` changes the training objective
  post-hoc     repair after training: :meth:`Defense.repair` rewrites the trained adapter

Add one without touching the core::

    @register_defense("my-defense")
    @dataclass
    class MyDefense(Defense):
        stage: ClassVar[str] = "data"
        strength: float = 1.0
        def screen(self, ctx, records): ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from ..data import ChatRecord
from ..errors import FtauditError

STAGES = ("alignment", "data", "fine-tuning", "post-hoc")


@dataclass
class DefenseContext:
    """What a defense may use: the run's store, the model the attacker starts from and, where known, the model
    before safety training (SafeLoRA's 'unaligned' weights) and the alignment settings."""

    store: object
    initial: str  # the released (aligned) model
    unaligned: str | None = None
    align_params: dict = field(default_factory=dict)
    seed: int = 0
    # where ``unaligned`` came from: "align" (the run safety-trained the model itself, so "unaligned" is the packaged
    # model before ftaudit's align recipe) or "given" (named by the user)
    unaligned_from: str = "given"
    # the model that answers harmful train prompts at run time where a defense needs compliant answers (Booster)
    reference_model: str | None = None
    # training options every training the defense runs takes, under its own: the run's mixed precision
    # (ExperimentSpec.run_train), so a defended model is trained as the undefended one it is compared with
    train: dict = field(default_factory=dict)

    def hardening_config(self, overrides: dict | None = None):
        """The training config of an alignment-time defense that trains the ``align`` recipe's records itself: the
        align recipe's settings and this run's seed, then the run's options (:attr:`train`), then the defense's own."""
        from ..fine_tune import train_config
        from ..recipes.base import TRAIN_DEFAULTS

        return train_config({**TRAIN_DEFAULTS["align"], "seed": self.seed}, {**self.train, **(overrides or {})})


def realign_context(ctx: DefenseContext, defense: str, needs: str):
    """What an alignment-time defense that re-runs the ``align`` recipe with harmful answers starts from: the model
    (before safety training when the run aligns one, else the released one), a recipe context whose reference model
    answers harmful train prompts at run time, and the ``align`` recipe's records. ``needs`` says why the reference
    model is needed, in the error a missing one gives."""
    from ..models import resolve_model_location
    from ..recipes import RecipeContext, build_recipe

    if not ctx.reference_model:
        raise FtauditError(f"{defense} {needs}: name a reference model (spec reference_model, or --reference-model) "
                           "that answers harmful train prompts at run time")
    start = resolve_model_location(ctx.unaligned or ctx.initial)
    rctx = RecipeContext(model=start, store=ctx.store, reference_model=resolve_model_location(ctx.reference_model),
                         seed=ctx.seed)
    return start, rctx, build_recipe("align", rctx, **(ctx.align_params or {}))


@dataclass
class Defense:
    """Base class; subclasses are dataclasses whose fields are the defense's hyperparameters."""

    name: ClassVar[str] = ""
    stage: ClassVar[str] = ""

    def params(self) -> dict:
        return asdict(self)

    @property
    def label(self) -> str:
        """``safety-mix(ratio=0.1)``: the name plus the parameters the user gave or that differ from the defaults."""
        default = type(self)()
        shown = {f.name: getattr(self, f.name) for f in fields(self)
                 if f.name in getattr(self, "given", ()) or getattr(self, f.name) != getattr(default, f.name)}
        return self.name + (f"({','.join(f'{k}={v}' for k, v in sorted(shown.items()))})" if shown else "")

    @property
    def changes_training(self) -> bool:
        """Whether the attack's training differs from the undefended one (post-hoc defenses reuse its weights)."""
        return self.stage != "post-hoc"

    def harden(self, ctx: DefenseContext, out_dir: Path) -> dict:
        """alignment: write the hardened model to ``out_dir``; returns its cost record."""
        raise NotImplementedError

    def screen(self, ctx: DefenseContext, records: list[ChatRecord]) -> tuple[list[ChatRecord], dict]:
        """data / fine-tuning: the records training will use, and a report of what changed."""
        return records, {}

    def train_overrides(self) -> dict:
        """fine-tuning: TrainConfig values the service imposes (e.g. the objective)."""
        return {}

    def repair(self, ctx: DefenseContext, trained_dir: Path, out_dir: Path) -> dict:
        """post-hoc: write a repaired copy of the trained adapter in ``trained_dir`` to ``out_dir``; returns a report."""
        raise NotImplementedError


DEFENSES: dict[str, type[Defense]] = {}


def register_defense(name: str):
    def wrap(cls: type[Defense]) -> type[Defense]:
        if cls.stage not in STAGES:
            raise ValueError(f"defense {name}: stage must be one of {STAGES}, got {cls.stage!r}")
        cls.name = name
        DEFENSES[name] = cls
        return cls
    return wrap


def get_defense(name: str, params: dict | None = None) -> Defense:
    """The defense ``name`` configured with ``params`` (checked with pydantic against its dataclass: an unknown
    name, parameter or bad value fails with one line)."""
    from pydantic import TypeAdapter, ValidationError

    from ..errors import validation_message

    if name not in DEFENSES:
        raise FtauditError(f"unknown defense '{name}'; known: none, {', '.join(sorted(DEFENSES))}")
    cls = DEFENSES[name]
    unknown = set(params or {}) - {f.name for f in fields(cls)}
    if unknown:
        raise FtauditError(f"defense {name} takes no parameter {', '.join(sorted(unknown))}; "
                           f"it takes: {', '.join(f.name for f in fields(cls)) or 'none'}")
    try:
        defense = TypeAdapter(cls).validate_python(params or {})
    except ValidationError as exc:
        raise FtauditError(f"defense {name}: {validation_message(exc)}") from None
    defense.given = tuple(sorted(params or {}))  # named in the label even at their default value
    return defense
