"""Generation through the store: each prompt's answer is generated once per (weights, decoding settings, system
prompt, prompt) and committed per batch, so a killed run resumes and a second run reuses what was generated.

The key names the dtype actually computed in (``dtype: auto`` is resolved here, where the engine is known), so two
dtypes or two engines never hand back each other's answers."""

from __future__ import annotations

import time
from dataclasses import replace

from ..data import PromptRecord
from ..models import load_model, messages_for, model_fingerprint
from ..models.dtype_choice import generation_dtype
from ..models.loading import saved_dtype
from ..store import Store, generation_key
from . import GenerationConfig, HFBackend, backend_for, select_backend


def cached_generate(store: Store, model_location: str, model_name: str, attack: str, dataset: str, split: str,
                    prompts: list[PromptRecord], cfg: GenerationConfig, loaded=None) -> tuple[list[str], object]:
    """Return generation keys for ``prompts``, generating only those not yet in the store.

    Returns (keys, loaded model or None); the model is loaded lazily and handed back for reuse.
    """
    fp = model_fingerprint(model_location)
    kind = select_backend(model_location)
    # the dtype computed in (auto resolved on this machine, a named one honoured with a warning where emulated, the
    # default load's) is part of the identity; vLLM's greedy answers are not transformers': never handed back for each other
    dtype, dtype_note = generation_dtype(cfg.dtype, saved_dtype(model_location) if kind == "hf" else None, kind)
    cfg = replace(cfg, dtype=dtype, backend=kind)
    texts = [cfg.prompt_template.format(prompt=p.prompt) for p in prompts]
    keys = [generation_key(fp, cfg.key(), cfg.system_prompt, t) for t in texts]
    have = store.existing_generations(keys)
    todo = [i for i, k in enumerate(keys) if k not in have]
    if todo:
        store.add_gen_settings(fp, cfg.key(), {**cfg.identity(), "dtype_computed": dtype_note})
        def load():  # the model in exactly the dtype the key names: a handed-in one only if it was loaded so
            if loaded is not None and (dtype is None or str(getattr(loaded.model, "dtype", "")) == f"torch.{dtype}"):
                return loaded
            return load_model(model_location, dtype=dtype)
        backend = backend_for(model_location, load, kind)
        if isinstance(backend, HFBackend):
            loaded = backend.loaded
        start, tokens = time.time(), 0

        def persist(idx, results):
            nonlocal tokens
            rows = []
            for j, res in zip(idx, results):
                i = todo[j]
                tokens += res.new_tokens
                rows.append({"key": keys[i], "model": model_name, "model_fingerprint": fp, "gen_key": cfg.key(),
                             "dataset": dataset, "split": split, "prompt_id": prompts[i].id, "category": prompts[i].category,
                             "prompt": prompts[i].prompt, "system_prompt": cfg.system_prompt, "response": res.response,
                             "new_tokens": res.new_tokens})
            store.add_generations(rows)

        convs = [messages_for(texts[i], cfg.system_prompt) for i in todo]
        backend.generate(convs, cfg, on_batch=persist, description=f"{model_name} · {dataset}")
        store.add_gen_cost(model_name, attack, time.time() - start, tokens)
    return keys, loaded
