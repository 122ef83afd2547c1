"""The vLLM backend's wiring, against a stand-in ``vllm`` module (vLLM needs a CUDA GPU, absent here).

These tests check what ftaudit asks of vLLM (LoRA enabled, adapter served over its base without merging,
one engine shared across adapters, results persisted); they cannot check vLLM itself."""

import importlib.machinery
import sys
import types
from types import SimpleNamespace

import pytest

from ftaudit.data import ChatRecord, PromptRecord
from ftaudit.generate import GenerationConfig
from ftaudit.generate.cached import cached_generate
from ftaudit.store import Store
from ftaudit.train import TrainConfig, train


@pytest.fixture
def fake_vllm(monkeypatch):
    calls = []

    class LLM:
        def __init__(self, model, **kw):
            calls.append(("init", model, kw))

        def generate(self, prompts, params, lora_request=None, use_tqdm=True):
            calls.append(("generate", prompts, params.kw, lora_request))
            return [SimpleNamespace(outputs=[SimpleNamespace(text=f" reply to {len(p['prompt_token_ids'])} tokens ",
                                                             token_ids=[5, 6, 7])]) for p in prompts]

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LoRARequest:
        def __init__(self, name, lora_id, path):
            self.name, self.id, self.path = name, lora_id, path

    vllm = types.ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", request)
    from ftaudit.generate import vllm as backend

    monkeypatch.setattr(backend, "_ENGINES", {})
    return calls


def _adapter(tiny_model, out, seed):
    recs = [ChatRecord([{"role": "user", "content": f"Say hi {i}"}, {"role": "assistant", "content": "Hi."}], f"r{i}")
            for i in range(2)]
    train(recs, tiny_model, TrainConfig(epochs=1, batch_size=2, lora_r=4, seed=seed), out, recipe="x")
    return str(out)


def test_adapters_are_served_over_one_engine_without_merging(tiny_model, tmp_path, fake_vllm, monkeypatch):
    import torch

    from ftaudit.generate.choice import select_backend

    first, second = _adapter(tiny_model, tmp_path / "a1", 1), _adapter(tiny_model, tmp_path / "a2", 2)
    assert select_backend(first) == "hf"  # no GPU: the HF backend
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_backend(first) == "vllm" and select_backend(tiny_model) == "vllm"
    monkeypatch.setenv("FTAUDIT_GENERATION_BACKEND", "hf")
    assert select_backend(first) == "hf"
    monkeypatch.delenv("FTAUDIT_GENERATION_BACKEND")

    store = Store(tmp_path / "run")
    prompts = [PromptRecord(prompt=f"Write a poem {i}", id=f"p{i}") for i in range(3)]
    cfg = GenerationConfig(max_new_tokens=7)
    keys, _ = cached_generate(store, first, "m1", "x", "d", "eval", prompts, cfg)
    cached_generate(store, second, "m2", "x", "d", "eval", prompts, cfg)
    inits = [c for c in fake_vllm if c[0] == "init"]
    assert len(inits) == 1  # one engine for the base, both adapters served by it
    assert inits[0][1] == tiny_model and inits[0][2]["enable_lora"] and inits[0][2]["max_lora_rank"] >= 4
    gens = [c for c in fake_vllm if c[0] == "generate"]
    assert [g[3].path for g in gens] == [first, second] and gens[0][3].id != gens[1][3].id
    assert gens[0][2] == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 7, "seed": 0}
    rows = store.existing_generations(keys)
    assert len(rows) == 3 and all(r["response"].startswith("reply to") and r["new_tokens"] == 3 for r in rows.values())
    cached_generate(store, first, "m1", "x", "d", "eval", prompts, cfg)
    assert len([c for c in fake_vllm if c[0] == "generate"]) == 2  # a rerun generates nothing

    import json
    from pathlib import Path

    from ftaudit.generate.vllm import VLLMBackend

    marker = Path(second) / "ftaudit_model.json"  # pretend the second adapter was trained with QLoRA
    meta = json.loads(marker.read_text())
    meta["train_config"]["method"] = "qlora"
    marker.write_text(json.dumps(meta))
    VLLMBackend(second)
    inits = [c for c in fake_vllm if c[0] == "init"]
    assert len(inits) == 2 and inits[1][2]["quantization"] == "bitsandbytes" and "quantization" not in inits[0][2]


def test_forcing_vllm_without_a_gpu_is_one_line(monkeypatch, tiny_model):
    from ftaudit.errors import FtauditError
    from ftaudit.generate.choice import select_backend

    monkeypatch.setenv("FTAUDIT_GENERATION_BACKEND", "vllm")
    with pytest.raises(FtauditError, match="needs vLLM and a CUDA GPU"):
        select_backend(tiny_model)
