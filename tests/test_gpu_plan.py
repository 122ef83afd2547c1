"""How models are placed and keyed for GPUs, tested on CPU: a QLoRA adapter is evaluated over its quantized
base, a GPU's bf16 default is part of every identity, and the weights' size decides one GPU or several."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ftaudit.errors import FtauditError
from ftaudit.models import load_model
from ftaudit.models import loading
from ftaudit.train import TrainConfig, train
from test_train_generate import records


def _adapter(tiny_model, tmp_path, method: str):
    out = tmp_path / "adapter"
    train(records(2), tiny_model, TrainConfig(epochs=1, batch_size=2, lora_r=2, target_modules=["q_proj"]), out, recipe="x")
    marker = out / loading.MARKER
    meta = json.loads(marker.read_text())
    meta["train_config"]["method"] = method  # as a QLoRA run on a GPU records it
    marker.write_text(json.dumps(meta))
    return out


def test_a_qlora_adapter_is_evaluated_over_its_base_quantized_as_trained(tiny_model, tmp_path, monkeypatch):
    import torch

    out = _adapter(tiny_model, tmp_path, "qlora")
    asked = []
    real = loading.quantization_config
    monkeypatch.setattr(loading, "quantization_config", lambda bits: asked.append(bits) or real(bits))
    if torch.cuda.is_available():
        loaded = load_model(str(out))
        assert getattr(loaded.model, "is_loaded_in_4bit", False) or "4bit" in asked
    else:  # bitsandbytes needs CUDA: the load fails in one line rather than running the unquantized base
        with pytest.raises(FtauditError, match="QLoRA needs a CUDA GPU"):
            load_model(str(out))
    assert asked == ["4bit"]
    load_model(str(_adapter(tiny_model, tmp_path / "l", "lora")))  # a LoRA adapter loads as before


def test_the_gpu_bf16_default_is_part_of_training_and_generation_identity(tiny_model, monkeypatch):
    from ftaudit.evaluate import cached_generate
    from ftaudit.generate import GenerationConfig
    from ftaudit.train.engine import run_fingerprint

    cfg = TrainConfig()
    cpu = run_fingerprint("base", records(2), cfg, "x")
    monkeypatch.setattr(loading, "default_dtype", lambda: "bfloat16")
    assert run_fingerprint("base", records(2), cfg, "x") != cpu

    seen = []

    class Store:
        def existing_generations(self, keys):
            seen.append(keys)
            return set(keys)  # all cached: nothing is generated

    from ftaudit.data import PromptRecord

    prompts = [PromptRecord("Hi", "p1")]
    gen = GenerationConfig(max_new_tokens=4)
    import ftaudit.evaluate as evaluate

    monkeypatch.setattr(evaluate, "default_dtype", lambda: "bfloat16")
    on_gpu, _ = cached_generate(Store(), tiny_model, "m", "none", "d", "eval", prompts, gen)
    monkeypatch.setattr(evaluate, "default_dtype", lambda: None)
    on_cpu, _ = cached_generate(Store(), tiny_model, "m", "none", "d", "eval", prompts, gen)
    assert on_gpu != on_cpu  # bf16 answers on a GPU are never pooled with float32 ones from a CPU
    explicit, _ = cached_generate(Store(), tiny_model, "m", "none", "d", "eval", prompts, replace(gen, dtype="bfloat16"))
    assert explicit == on_gpu


def test_weight_bytes_count_the_dtype_the_model_is_loaded_in(tiny_model):
    import torch
    from pathlib import Path

    stored = sum(f.stat().st_size for f in Path(tiny_model).glob("*.safetensors"))
    assert loading.weight_bytes(Path(tiny_model)) == stored
    assert json.loads((Path(tiny_model) / "config.json").read_text())["dtype"] == "float32"
    assert loading.weight_bytes(Path(tiny_model), torch.bfloat16) == stored // 2
    assert loading.default_dtype() is None or torch.cuda.is_available()
