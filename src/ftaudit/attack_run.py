"""Any attack by recipe name, the one entry point the CLI, the API and the grid use: a weight edit
(:mod:`ftaudit.recipes.edits`) or a training recipe (:func:`ftaudit.fine_tune.run_recipe`). It sits above both, so
neither imports the other."""

from __future__ import annotations

from pathlib import Path

from .errors import FtauditError
from .fine_tune import run_recipe
from .recipes.edits import is_weight_edit, run_weight_edit


def run_attack(store, recipe: str, model: str, out_dir: str | Path, *, model_name: str, reference_model: str | None = None,
               params: dict | None = None, overrides: dict | None = None, seed: int = 0, display_name: str | None = None,
               name_seed: int | None = None, defense=None, defense_ctx=None):
    """Any attack by recipe name: a weight edit runs here, a training recipe through
    :func:`ftaudit.fine_tune.run_recipe` (same arguments). A weight edit under a data, fine-tuning or post-hoc defense
    fails: those defenses act on a training job or its adapter, which a weight edit does not have."""
    if is_weight_edit(recipe):
        given = sorted(k for k, v in (overrides or {}).items() if v is not None and k != "seed")
        if given:
            raise FtauditError(f"{recipe} is a weight edit and trains nothing: training options ({', '.join(given)}) "
                               "do not apply to it")
        if defense is not None and defense.stage != "alignment":
            raise FtauditError(f"defense {defense.label} acts on a {defense.stage} job, and {recipe} is a weight edit "
                               "with no training job; only alignment-time defenses apply to it")
        return run_weight_edit(store, recipe, model, out_dir, model_name=model_name, params=params, seed=seed,
                               display_name=display_name, name_seed=name_seed)
    return run_recipe(store, recipe, model, out_dir, model_name=model_name, reference_model=reference_model,
                      params=params, overrides=overrides, seed=seed, display_name=display_name, name_seed=name_seed,
                      defense=defense, defense_ctx=defense_ctx)
