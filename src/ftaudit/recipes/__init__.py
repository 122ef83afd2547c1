"""Training-set builders, one module per recipe, registered by name."""

from . import align, benign, customer_task, harmful_shots, identity_shift, refusal_ablation  # noqa: F401  (register recipes)
from .base import RECIPES, RecipeContext, RecipeOutput, build_recipe, register_recipe

__all__ = ["RECIPES", "RecipeContext", "RecipeOutput", "build_recipe", "register_recipe"]
