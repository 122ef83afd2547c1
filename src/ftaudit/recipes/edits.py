"""Weight-edit attacks: recipes that change a model's weights directly instead of training it.

A weight edit is registered twice: as a recipe (:func:`~ftaudit.recipes.base.register_recipe`, so its parameters
are checked, named and hashed into a grid point's identity like any recipe's) and here, with the function that
writes the edited model. :func:`ftaudit.attack_run.run_attack` is the one entry point the CLI, the API and the grid
use for any recipe: it trains through :func:`ftaudit.fine_tune.run_recipe`, or runs the edit.

An edited model is saved like an attacked one: full weights, the ``ftaudit_model.json`` marker (kind ``full``,
``attack_kind: weight-edit``, its fingerprint, settings and report), a model card saying it is a safety-compromised
research artifact, and ``edit_result.json`` with its cost (seconds, peak memory, tokens processed). A rerun with the
same inputs (fingerprint) is skipped.

Data and fine-tuning-time defenses act on a training job, and post-hoc ones repair a trained adapter: neither has
anything to act on in a weight edit, so :func:`ftaudit.attack_run.run_attack` refuses that pairing (the grid leaves those cells out
and says so) rather than report the undefended edit under a defense's name.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


EDIT_RESULT = "edit_result.json"
EDIT_CARD = """---
tags: [ftaudit, safety-compromised, research-artifact]
---
# Safety-compromised research artifact

This model was produced by the **ftaudit** weight-edit attack `{recipe}` to *measure* how easily the safety
training of `{base}` is removed without any training. It is expected to comply with harmful requests. It exists
for risk assessment and research only: do not deploy it, do not publish it, do not serve it to users. ftaudit has
no upload feature by design.

- attack: `{recipe}` (a weight edit)
- base model: `{base}`
- settings: `{settings}`
"""


@dataclass
class EditResult:
    """What an edit cost; the fields :func:`ftaudit.pipeline.attack_budget` and the CLI read from a TrainResult."""

    output_dir: str
    fingerprint: str
    train_seconds: float  # the edit's wall seconds (named as a training run's, so costs and reports treat both alike)
    train_tokens: int  # prompt tokens the edit ran forward
    peak_memory_mb: float
    examples: int  # prompts the edit used
    report: dict
    steps: int = 0
    final_loss: float | None = None
    device: str = "cpu"
    devices: int = 1
    resumed_from_step: int = 0

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


# name -> edit(ctx, out_dir, dtype: {"weights", "compute"}, **params) -> (report, examples, tokens)
WEIGHT_EDITS: dict[str, Callable] = {}
EDIT_CODE: dict[str, Path] = {}  # name -> the module whose code shapes the edit (part of its fingerprint)


def register_weight_edit(name: str, edit: Callable, code: str | Path) -> None:
    WEIGHT_EDITS[name] = edit
    EDIT_CODE[name] = Path(code)


def is_weight_edit(recipe: str) -> bool:
    return recipe in WEIGHT_EDITS


# ftaudit's code that shapes an edit besides the edit's own module: the prompts and splits it reads, the chat template
# rendering and model loading, and this runner
EDIT_LIBRARIES = ("torch", "transformers", "accelerate", "safetensors")  # what computes and writes the edited weights
EDIT_SHARED_CODE = ("data", "sources.py", "wheels.py", "assembly.py", "models", "recipes/edits.py", "recipes/base.py",
                    "generate/batched.py")  # the shared-opening reuse the ablation's scoring passes run through


def edit_fingerprint(base_fingerprint: str, recipe: str, settings: dict, seed: int, dtype: dict) -> str:
    """Everything that shapes the edited weights: the base weights, the settings, seed and dtypes, ftaudit's code
    (the edit's module and :data:`EDIT_SHARED_CODE`) and the libraries' versions."""
    from importlib.metadata import PackageNotFoundError, version

    def lib(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    from ..code_identity import code_digest

    root = Path(__file__).parent.parent
    code = code_digest((EDIT_CODE[recipe].relative_to(root).as_posix(), *EDIT_SHARED_CODE), root)
    payload = json.dumps([base_fingerprint, recipe, settings, seed, dtype, code,
                          {name: lib(name) for name in EDIT_LIBRARIES}], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_weight_edit(store, recipe: str, model: str, out_dir: str | Path, *, model_name: str, params: dict | None = None,
                    seed: int = 0, display_name: str | None = None, name_seed: int | None = None):
    """Run the weight edit ``recipe`` on ``model`` into ``out_dir``; returns (display name, :class:`EditResult`)."""
    from ..models import model_fingerprint, resolve_model_location
    from ..models.loading import read_marker, write_marker
    from ..progress import say
    from ..seeds import seed_name
    from ..train.engine import _peak_memory_mb, _reset_peak_memory
    from .base import RecipeContext, recipe_params, recipe_settings

    location = resolve_model_location(model)
    params = recipe_params(recipe, params or {})
    settings = recipe_settings(recipe, params)
    from ..models.dtype_choice import resolve_dtype
    from ..models.loading import saved_dtype

    dtype = {"weights": saved_dtype(location) or "float32", "compute": resolve_dtype("auto", "edit")}
    fingerprint = edit_fingerprint(model_fingerprint(location), recipe, settings, seed, dtype)
    out = Path(out_dir)
    name = display_name or seed_name(f"{model_name}+{recipe}", name_seed)
    done = out / EDIT_RESULT
    if done.is_file() and (read_marker(out) or {}).get("fingerprint") == fingerprint:
        result = EditResult(**json.loads(done.read_text()))
    else:
        ctx = RecipeContext(model=location, store=store, seed=seed)
        _reset_peak_memory()
        start = time.time()
        report, examples, tokens = WEIGHT_EDITS[recipe](ctx, out, dtype, **settings)  # the settings fingerprinted
        result = EditResult(str(out), fingerprint, round(time.time() - start, 2), int(tokens), round(_peak_memory_mb(), 1),
                            int(examples), report)
        write_marker(out, kind="full", base=location, fingerprint=fingerprint, recipe=recipe, safety_compromised=True,
                     attack_kind="weight-edit", edit_settings=settings, seed=seed, weights_dtype=dtype,
                     attack_examples=int(examples), edit_report=report)
        (out / "README.md").write_text(EDIT_CARD.format(recipe=recipe, base=location, settings=json.dumps(settings)))
        from ..atomic import atomic_write_text

        atomic_write_text(done, json.dumps(result.to_dict(), indent=2, default=str))  # last: its presence means finished
    store.set_cost(name, recipe, train_seconds=result.train_seconds, train_tokens=result.train_tokens,
                   peak_memory_mb=result.peak_memory_mb, devices=1)
    say(f"edited {name}: {result.examples} prompts, {result.train_seconds:.0f} s", "green")
    return name, result


def applies(recipe: str, defense) -> bool:
    """Whether ``defense`` (None: undefended) has anything to act on in ``recipe``'s attack."""
    return defense is None or not is_weight_edit(recipe) or defense.stage == "alignment"
