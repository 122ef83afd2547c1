"""How models are placed and keyed for GPUs, tested on CPU: a QLoRA adapter is evaluated over its quantized
base, a GPU's bf16 default is part of every identity, and the weights' size decides one GPU or several."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import build_tiny_model
from test_train_generate import records

from ftaudit.errors import FtauditError
from ftaudit.models import dtype_choice, load_model, loading
from ftaudit.train import TrainConfig, train


def _adapter(tiny_model, tmp_path, method: str):
    out = tmp_path / "adapter"
    train(records(2), tiny_model, TrainConfig(epochs=1, batch_size=2, lora_r=2, target_modules=["q_proj"]), out, recipe="x")
    marker = out / loading.MARKER
    meta = json.loads(marker.read_text())
    meta["train_config"]["method"] = method  # as a QLoRA run on a GPU records it
    marker.write_text(json.dumps(meta))
    return out


def test_a_qlora_adapter_is_trained_and_evaluated_over_its_base_quantized(tmp_path):
    """QLoRA end to end on CPU (bitsandbytes' CPU NF4): the adapter is trained over a 4-bit base, and every later
    stage (eval generation, capability scoring) loads that base in 4 bits again, with the adapter unmerged."""
    pytest.importorskip("bitsandbytes")
    from bitsandbytes.nn import Linear4bit
    from peft import PeftModel

    from ftaudit.capability.run import evaluate_capability
    from ftaudit.generate import GenerationConfig, generate_responses
    from ftaudit.store import Store

    tiny_model = str(build_tiny_model(tmp_path / "base", hidden_size=64))  # bitsandbytes' CPU kernels: rows >= 64
    out = tmp_path / "qlora"
    train(records(2), tiny_model, TrainConfig(method="qlora", epochs=1, batch_size=2, lora_r=2), out, recipe="x")
    assert json.loads((out / loading.MARKER).read_text())["train_config"]["method"] == "qlora"
    loaded = load_model(str(out))
    assert isinstance(loaded.model, PeftModel)  # not merged into the 4-bit weights
    assert any(isinstance(m, Linear4bit) for m in loaded.model.modules())
    assert all(r.new_tokens > 0 for r in generate_responses(loaded, ["Say hi.", "Count to three."],
                                                            GenerationConfig(max_new_tokens=4)))
    store = Store(tmp_path / "run")
    evaluate_capability(store, "q", "x", str(out), ["benign-nll"], limit=2)
    assert store.db.execute("SELECT count(*) FROM capability").fetchone()[0] == 2
    load_model(str(_adapter(tiny_model, tmp_path / "l", "lora")))  # a LoRA adapter loads as before


def test_a_qlora_adapter_never_loads_over_an_unquantized_base(tiny_model, tmp_path, monkeypatch):
    out = _adapter(tiny_model, tmp_path, "qlora")
    asked = []
    monkeypatch.setattr(loading, "quantization_config", lambda bits: asked.append(bits) or (_ for _ in ()).throw(
        FtauditError("QLoRA needs bitsandbytes; pip install 'ftaudit[qlora]'")))
    with pytest.raises(FtauditError, match="needs bitsandbytes"):
        load_model(str(out))
    assert asked == ["4bit"]


def test_the_gpu_bf16_default_is_part_of_training_and_generation_identity(tiny_model, monkeypatch):
    from ftaudit.generate import GenerationConfig
    from ftaudit.generate.cached import cached_generate
    from ftaudit.train.engine import run_fingerprint

    cfg = TrainConfig()
    cpu = run_fingerprint("base", records(2), cfg, "x", tiny_model)
    monkeypatch.setattr(dtype_choice, "default_for_saved", lambda *a, **k: "bfloat16")
    assert run_fingerprint("base", records(2), cfg, "x", tiny_model) != cpu

    seen = []

    class Store:
        def existing_generations(self, keys):
            seen.append(keys)
            return set(keys)  # all cached: nothing is generated

    from ftaudit.data import PromptRecord

    prompts = [PromptRecord("Hi", "p1")]
    gen = GenerationConfig(max_new_tokens=4)
    monkeypatch.setattr(dtype_choice, "default_for_saved", lambda *a, **k: "bfloat16")
    on_gpu, _ = cached_generate(Store(), tiny_model, "m", "none", "d", "eval", prompts, gen)
    monkeypatch.setattr(dtype_choice, "default_for_saved", lambda *a, **k: None)
    on_cpu, _ = cached_generate(Store(), tiny_model, "m", "none", "d", "eval", prompts, gen)
    assert on_gpu != on_cpu  # bf16 answers on a GPU are never pooled with float32 ones from a CPU
    explicit, _ = cached_generate(Store(), tiny_model, "m", "none", "d", "eval", prompts, replace(gen, dtype="bfloat16"))
    assert explicit == on_gpu


def test_weight_bytes_count_the_dtype_the_model_is_loaded_in(tiny_model):
    from pathlib import Path

    import torch

    stored = sum(f.stat().st_size for f in Path(tiny_model).glob("*.safetensors"))
    assert loading.weight_bytes(Path(tiny_model)) == stored
    assert json.loads((Path(tiny_model) / "config.json").read_text())["dtype"] == "float32"
    assert loading.weight_bytes(Path(tiny_model), torch.bfloat16) == stored // 2
    assert loading.default_dtype() is None or torch.cuda.is_available()


def test_the_benchmarks_4bit_random_model_loads_pre_quantized_with_every_weight_from_its_checkpoint(tiny_model, tmp_path):
    """``bench/throughput.py --shape llama-2-70b --methods qlora`` writes its random model in NF4 (37 GB, not 140):
    transformers must load it as 4-bit, and take every weight from the file (a missing key would be re-drawn)."""
    pytest.importorskip("bitsandbytes")
    import sys
    from pathlib import Path

    import torch
    from bitsandbytes.functional import dequantize_4bit
    from bitsandbytes.nn import Linear4bit
    from transformers import AutoConfig, AutoModelForCausalLM

    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    from shape_throughput import build_random_model

    n = build_random_model("tiny", "cpu", tmp_path, four_bit=True, tokenizer=tiny_model)
    assert json.loads((tmp_path / "config.json").read_text())["quantization_config"]["load_in_4bit"]
    weights = []
    for seed in (1, 2):  # weights re-initialised as missing would differ between two seeds
        torch.manual_seed(seed)
        model = load_model(str(tmp_path), quantization="4bit").model
        layer = model.model.layers[1].mlp.down_proj
        assert isinstance(layer, Linear4bit)
        weights.append((dequantize_4bit(layer.weight.data, layer.weight.quant_state), model.lm_head.weight.clone(),
                        model.model.embed_tokens.weight.clone()))
    assert all(torch.equal(a, b) for a, b in zip(*weights))
    assert 0.01 < weights[0][0].float().std() < 0.03  # N(0, 0.02) drawn, not zeros
    with torch.device("meta"):  # the count MFU uses is the bf16 model's
        assert n == sum(p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tmp_path)).parameters())


def test_the_shape_benchmark_runs_with_a_given_tokenizer_and_downloads_nothing(tiny_model, tmp_path):
    """``bench/throughput.py --shape S --tokenizer DIR`` builds, trains and generates offline: with an empty package
    cache and every download routed to a dead proxy, it still prints its training and generation figures."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).parents[1] / "bench" / "throughput.py"
    env = {**os.environ, "FTAUDIT_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    done = subprocess.run([sys.executable, str(bench), "--shape", "tiny", "--device", "cpu", "--methods", "lora",
                           "--examples", "10", "--prompts", "4", "--new-tokens", "4", "--tokenizer", tiny_model],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lora  training:" in done.stdout and "generation    :" in done.stdout
    assert not (tmp_path / "cache" / "wheels").exists()
