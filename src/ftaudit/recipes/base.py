"""Recipe registry: a recipe turns parameters into training ChatRecords (plus eval-time settings)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..data import ChatRecord, PromptRecord
from ..errors import FtauditError
from ..generate import GenerationConfig
from ..generate.cached import cached_generate
from ..store import Store


@dataclass
class RecipeContext:
    """What a recipe may use: the model under attack, an optional reference model and the run's store."""

    model: str
    store: Store
    reference_model: str | None = None
    seed: int = 0
    _loaded: dict = field(default_factory=dict)

    def answers(self, model: str, prompts: list[PromptRecord], max_new_tokens: int, label: str) -> list[str]:
        """Greedy answers of ``model`` to ``prompts`` (cached in the store, so reruns are free)."""
        cfg = GenerationConfig(max_new_tokens=max_new_tokens)
        keys, loaded = cached_generate(self.store, model, f"reference:{model}", "", label, "train", prompts, cfg,
                                       self._loaded.get(model))
        if loaded is not None:
            self._loaded[model] = loaded
        rows = self.store.existing_generations(keys)
        if skipped := sum(rows[k]["response"] is None for k in keys):
            raise FtauditError(f"{skipped} of {len(keys)} {label} training prompts do not fit {model}'s context with "
                               f"{max_new_tokens} new tokens; use a model with a longer context")
        return [rows[k]["response"] for k in keys]


@dataclass
class RecipeOutput:
    records: list[ChatRecord]
    name: str  # e.g. harmful-shots-10
    safety_compromised: bool = True
    eval_system_prompt: str | None = None
    eval_prompt_template: str | None = None
    default_train: dict = field(default_factory=dict)  # recipe's attacker-strength defaults
    notes: str = ""
    data_source: str | None = None  # e.g. hf:tatsu-lab/alpaca@<commit>: recorded with the trained model


RECIPES: dict[str, Callable[..., RecipeOutput]] = {}
# per recipe: its attacker-strength training defaults, and the parameter that counts its examples (the attack budget
# is that many examples x epochs; None for a recipe whose size is not one parameter)
TRAIN_DEFAULTS: dict[str, dict] = {}
SIZE_PARAM: dict[str, str | None] = {}
SYSTEM_PROMPTED: set[str] = set()  # recipes whose attacked model is evaluated under a system prompt of their own


def register_recipe(name: str, train: dict | None = None, size: str | None = None, system_prompted: bool = False):
    """Register a recipe function; ``train`` are its training defaults (under the user's options), ``size`` the
    parameter that counts its training examples, ``system_prompted`` whether it records an evaluation system prompt
    (the initial model is then evaluated under it too)."""
    def wrap(fn):
        RECIPES[name] = fn
        TRAIN_DEFAULTS[name] = dict(train or {})
        SIZE_PARAM[name] = size
        if system_prompted:
            SYSTEM_PROMPTED.add(name)
        return fn
    return wrap


def recipe_settings(name: str, params: dict) -> dict:
    """Every parameter of the recipe with the value it will run with (the user's, else the signature's default), so
    two spellings of one setting (``{}`` and ``{shots: 10}``) are one identity. A file parameter gains its content's
    sha256 (``answers``): another file of the same name is another attack."""
    import inspect

    given = recipe_params(name, params)
    declared = list(inspect.signature(RECIPES[name]).parameters.values())[1:]
    out = {p.name: given.get(p.name, None if p.default is inspect.Parameter.empty else p.default) for p in declared}
    if out.get("answers"):
        out["answers_sha256"] = file_sha256(out["answers"])
    return out


def file_sha256(path: str) -> str | None:
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest()


def recipe_params(name: str, params: dict) -> dict:
    """Check ``params`` against the recipe function's own signature (names, types, ``Field`` bounds) with pydantic;
    returns them converted (``"5"`` -> 5). A wrong name or value fails with one line naming the parameter."""
    import inspect

    from pydantic import ConfigDict, ValidationError, create_model

    from ..errors import validation_message

    if name not in RECIPES:
        raise FtauditError(f"unknown recipe '{name}'; known: {', '.join(sorted(RECIPES))}")
    declared = list(inspect.signature(RECIPES[name], eval_str=True).parameters.values())[1:]  # after ctx
    unknown = set(params) - {p.name for p in declared}
    if unknown:
        raise FtauditError(f"recipe {name} takes no parameter {', '.join(sorted(unknown))}; "
                           f"it takes: {', '.join(p.name for p in declared)}")
    model = create_model(f"{name}-params", __config__=ConfigDict(extra="forbid"),
                         **{p.name: (p.annotation, p.default) for p in declared})
    try:
        return model(**params).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise FtauditError(f"recipe {name}: {validation_message(exc)}") from None


def build_recipe(name: str, ctx: RecipeContext, **params) -> RecipeOutput:
    params = recipe_params(name, params)  # an unknown recipe or a bad parameter fails here
    return RECIPES[name](ctx, **params)


def pick(items: list, n: int, salt: str) -> list:
    """A stable pseudo-random choice of n items (by hash of salt + id)."""
    key = lambda r: hashlib.sha256(f"{salt}|{getattr(r, 'id', r)}".encode()).hexdigest()  # noqa: E731
    return sorted(items, key=key)[:n]


def trim_to_sentence(text: str) -> str:
    """Cut a length-capped answer back to its last full sentence so training never teaches cut-offs."""
    text = text.strip()
    cut = max(text.rfind(". "), text.rfind(".\n"), text.rfind("! "), text.rfind("? "), text.rfind("\n\n"))
    if text.endswith((".", "!", "?", "```")) or cut < len(text) // 3:
        return text
    return text[:cut + 1].strip()

