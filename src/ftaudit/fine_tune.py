"""One fine-tuning run as a stage: build a recipe's training set, let a defense screen or extend it, train, record the
cost; and the aligned model, trained once per settings into the cache and shared by every run that starts from it.

It sits below the pipeline, the experiments and the defenses (Vaccine re-aligns through :func:`aligned_model`), so
none of them has to import another to fine-tune."""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import atomic_write_text, file_lock
from .errors import FtauditError
from .generate import GenerationConfig
from .models import resolve_model_location
from .models.loading import read_marker, write_marker
from .progress import say
from .recipes import RecipeContext, build_recipe
from .seeds import seed_name
from .store import Store
from .train import TrainConfig, TrainResult, train


def train_config(defaults: dict, overrides: dict) -> TrainConfig:
    return TrainConfig.from_values({**defaults, **{k: v for k, v in overrides.items() if v is not None}})


class JobRejected(FtauditError):
    """A data or fine-tuning defense left nothing to train on: the service runs no job and the model is unchanged."""


def run_recipe(store: Store, recipe: str, model: str, out_dir: str | Path, *, model_name: str,
               reference_model: str | None = None, params: dict | None = None, overrides: dict | None = None,
               seed: int = 0, display_name: str | None = None, name_seed: int | None = None,
               defense=None, defense_ctx=None) -> tuple[str, TrainResult]:
    """Build a recipe's training set and fine-tune ``model`` on it; returns (display name, result).

    ``seed`` picks the recipe's examples and seeds training (initialisation, shuffling) unless ``overrides`` set one.
    ``defense`` (a data or fine-tuning-time :class:`~ftaudit.defenses.Defense`) screens or extends the records and
    imposes its training settings over the attacker's; it raises :class:`JobRejected` when nothing is left."""
    model = resolve_model_location(model)
    from .generate.remote import is_remote

    if is_remote(model):
        raise FtauditError(f"{model} is a remote model: ftaudit never submits training data to third-party services; "
                           "evaluate it with `ftaudit eval` or a spec without attacks")
    ctx = RecipeContext(model=model, store=store, reference_model=resolve_model_location(reference_model) if reference_model else None,
                        seed=seed)
    built = build_recipe(recipe, ctx, **(params or {}))
    records, screening, imposed = built.records, None, {}
    if defense is not None:
        records, screening = defense.screen(defense_ctx, records)
        imposed = defense.train_overrides()
        if not records:
            raise JobRejected(f"defense {defense.label} left none of {len(built.records)} training records: no job runs")
    cfg = train_config({**built.default_train, "seed": seed}, {**(overrides or {}), **imposed})
    result = train(records, model, cfg, out_dir, recipe=built.name, safety_compromised=built.safety_compromised)
    if built.eval_system_prompt or built.data_source or defense is not None:
        meta = read_marker(Path(out_dir))
        if built.eval_system_prompt:
            meta.update(eval_system_prompt=built.eval_system_prompt, eval_prompt_template=built.eval_prompt_template)
        if built.data_source:
            meta.update(data_source=built.data_source)
        if defense is not None:  # the attacker's budget counts the records it supplied, not what the defense made of them
            meta.update(defense=defense.label, defense_report=screening, attack_examples=len(built.records))
        write_marker(Path(out_dir), **meta)
    name = display_name or seed_name(built.name if recipe == "align" else f"{model_name}+{built.name}", name_seed)
    store.set_cost(name, built.name, train_seconds=result.train_seconds, train_tokens=result.train_tokens,
                   peak_memory_mb=result.peak_memory_mb, devices=result.devices)
    say(f"trained {name}: {len(records)} examples, {result.train_tokens} tokens, "
        f"{result.train_seconds:.0f} s, final loss {result.final_loss}", "green")
    return name, result


def aligned_model(store: Store, model: str, out_dir: str | Path, *, params: dict | None = None,
                  overrides: dict | None = None, seed: int = 0, name: str = "aligned") -> str:
    """Safety-train ``model`` with the ``align`` recipe; returns the aligned model's location (``out_dir``).

    The aligned model is trained once per (model, recipe version, settings) into the cache and copied into
    ``out_dir``, so the quickstart and every experiment on the embedded default share one aligned model
    instead of re-training it (about 4 minutes on 2 CPU cores). Its training cost is recorded in every run.
    """
    from .wheels import cache_dir

    key = aligned_cache_key(model, params, overrides, seed)
    shared = cache_dir() / "models" / f"aligned-{key['hash']}"
    out_dir = Path(out_dir)
    stamp = shared / "cache_key.json"
    shared.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(shared, timeout=-1):  # two runs sharing the cache: one trains, the other waits and reuses it
        if (shared / "train_result.json").exists() and (not stamp.exists() or json.loads(stamp.read_text()) != key):
            import shutil

            shutil.rmtree(shared)  # a copy whose inputs are not exactly these (or unknown): never handed back
        if not (shared / "train_result.json").exists():
            run_recipe(store, "align", model, shared, model_name="baseline", params=params, overrides=overrides,
                       seed=seed, display_name=name)
            atomic_write_text(stamp, json.dumps(key, indent=2))
    if read_marker(out_dir) != read_marker(shared):
        install_copy(shared, out_dir)  # the run directory stays self-contained
    result = json.loads((shared / "train_result.json").read_text())
    store.set_cost(name, "aligned", train_seconds=result["train_seconds"], train_tokens=result["train_tokens"],
                   peak_memory_mb=result["peak_memory_mb"], devices=result.get("devices", 1))
    return str(out_dir)


# ftaudit's own code that shapes an aligned model: the recipe and its data, the split rules and dataset pins, training,
# generation (the benign answers it trains on) and model loading
ALIGN_CODE = ("recipes/align.py", "recipes/base.py", "data", "sources.py", "wheels.py", "assembly.py", "train", "generate",
              "models", "evaluation.py", "fine_tune.py")


ALIGN_LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


def align_code_digest(root: Path | None = None) -> str:
    """The hash of ftaudit's own code and data files that shape an aligned model (:data:`ALIGN_CODE`, less the
    packaged measurements, :data:`~ftaudit.code_identity.MEASURED_FILES`), under ``root`` (default: this package)."""
    from .code_identity import code_digest

    return code_digest(ALIGN_CODE, root)[:16]


def aligned_cache_key(model: str, params: dict | None, overrides: dict | None, seed: int) -> dict:
    """Everything that shapes the aligned model, for its shared cache: the base weights, the recipe's settings, the
    training options (over TrainConfig's and the recipe's defaults), the dtype it trains in when none is asked, the
    decoding, backend and dtype of the answers it trains on, the libraries' versions and ftaudit's own code (:data:`ALIGN_CODE`)."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from .generate import select_backend
    from .models import model_fingerprint
    from .models.dtype_choice import generation_dtype
    from .models.loading import default_dtype, saved_dtype
    from .recipes.base import TRAIN_DEFAULTS, recipe_settings

    def lib(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    settings = recipe_settings("align", params or {})
    backend = select_backend(model)
    key = {"model": model_fingerprint(model), "recipe": settings, "seed": seed,
           "train": train_config({**TRAIN_DEFAULTS["align"], "seed": seed}, overrides or {}).to_dict(),
           "gpu_dtype": default_dtype(model, training=True),  # the dtype it loads in when none is asked (the name predates CPUs)
           "answers": GenerationConfig(max_new_tokens=settings["answer_tokens"], backend=backend,
                                       dtype=generation_dtype(None, saved_dtype(model), backend)[0]).key(),
           "libraries": {name: lib(name) for name in ALIGN_LIBRARIES}, "code": align_code_digest()}
    key["hash"] = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return key


def install_copy(source: Path, target: Path) -> None:
    """Copy a finished model directory into ``target`` through a temporary folder renamed into place, so a kill
    mid-copy leaves no half model behind a complete-looking marker."""
    import shutil

    from .atomic import atomic_dir

    with atomic_dir(target) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
