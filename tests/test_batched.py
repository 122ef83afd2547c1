"""The one batched path local generation, local judges and MMLU scoring share (ftaudit.generate.batched)."""

from __future__ import annotations

import functools
import types

import pytest

from ftaudit.generate import batched
from ftaudit.models import load_model


def test_batch_budget_counts_the_new_tokens():
    lengths = [10, 10, 10, 10]
    assert batched.plan_batches(lengths, 8, 80, new_tokens=0) == [[0, 1, 2, 3]]
    # 4 x (10 + 10) = 80 fits; with 30 new tokens each row takes 40 positions of KV cache: 2 per batch
    assert batched.plan_batches(lengths, 8, 80, new_tokens=10) == [[0, 1, 2, 3]]
    assert batched.plan_batches(lengths, 8, 80, new_tokens=30) == [[0, 1], [2, 3]]
    assert batched.plan_batches([5, 50, 7], 8, 1000) == [[1, 2, 0]]  # longest first
    assert batched.plan_batches([500], 8, 100, new_tokens=10) == [[0]]  # over budget alone: it still runs


def test_gpu_batch_budget_is_what_the_kv_cache_fits_in_free_memory(monkeypatch):
    import torch

    cfg = types.SimpleNamespace(num_key_value_heads=8, num_attention_heads=64, hidden_size=8192, num_hidden_layers=80,
                                head_dim=None)
    model = types.SimpleNamespace(config=cfg, dtype=torch.bfloat16, device=torch.device("cuda", 0))
    assert batched.kv_bytes_per_token(model) == 2 * 80 * 8 * 128 * 2  # Llama-2-70B: 320 kB per token
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (32 * 2**30, 80 * 2**30))
    size, budget = batched.batch_limits(model, None, None)
    assert size == batched.GPU_BATCH and budget == int(0.6 * 32 * 2**30 / (2 * 80 * 8 * 128 * 2))
    assert batched.batch_limits(model, 7, 900) == (7, 900)  # what the user set wins
    cpu = types.SimpleNamespace(device=torch.device("cpu"))
    assert batched.batch_limits(cpu, None, None) == (batched.CPU_BATCH, batched.CPU_BATCH_TOKENS)


def test_static_cache_with_bucketed_padding_gives_the_same_greedy_answers(tiny_model, monkeypatch):
    loaded = load_model(tiny_model)
    tok = loaded.tokenizer
    prompts = [tok(t).input_ids for t in ["Write a poem about the sea.", "Hi", "Explain photosynthesis, please."]]
    dynamic = batched.generate_ids(loaded.model, tok, prompts, max_new_tokens=6)
    monkeypatch.setattr(batched, "static_cache_wanted", lambda model: True)
    calls = []
    real = batched.left_padded
    monkeypatch.setattr(batched, "left_padded", lambda *a, **k: calls.append(a[-1]) or real(*a, **k))
    assert batched.generate_ids(loaded.model, tok, prompts, max_new_tokens=6) == dynamic
    assert calls == [batched.STATIC_BUCKET]  # prompts padded to a multiple of 64: few compiled shapes


def test_a_shared_opening_is_computed_once_and_gives_the_same_answers(tiny_model, monkeypatch):
    """Prompts that open alike (a chat template's system prompt) reuse one KV cache of that opening, padded
    after it: the greedy answers are those of plain left padding, and of each prompt alone."""
    import torch

    loaded = load_model(tiny_model)
    tok, model = loaded.tokenizer, loaded.model
    opening = tok("Hello there, how are you today? I'm sorry, but").input_ids
    prompts = [opening + tok(t).input_ids for t in ["Write a poem about the sea.", "Hi", "Explain photosynthesis, please."]]
    assert batched.shared_prefix(prompts) == opening and len(opening) >= batched.SHARED_PREFIX_MIN
    assert batched.shared_prefix([opening, opening]) == opening[:-1]  # every prompt keeps a token of its own
    assert batched.shared_prefix([opening[:5] + [1], opening[:5] + [2]]) == []  # too short to pay
    prefill, logits = [], []
    real_forward = model.forward

    @functools.wraps(real_forward)  # keeps its signature: generate passes position_ids only to a forward that takes them
    def forward(*a, **k):
        out = real_forward(*a, **k)
        prefill.append(k["input_ids"].shape)
        logits.append(out.logits[:, -1].float())
        return out

    monkeypatch.setattr(model, "forward", forward)
    shared = batched.generate_ids(model, tok, prompts, max_new_tokens=6)
    assert prefill[0] == (1, len(opening))  # the opening alone, once
    order = sorted(range(3), key=lambda i: -len(prompts[i]))  # the batch's rows: longest prompt first
    assert prefill[1] == (3, len(prompts[order[0]]) - len(opening))  # the batch's prefill skips the opening
    monkeypatch.setattr(model, "forward", real_forward)
    for row, i in enumerate(order):  # the batch's first next-token logits are each prompt's alone
        with torch.inference_mode():
            alone = model(input_ids=torch.tensor([prompts[i]])).logits[0, -1].float()
        assert torch.allclose(logits[1][row], alone, atol=1e-4), i
    prefill.clear()
    monkeypatch.setattr(model, "forward", lambda *a, **k: forward(*a, **k))  # hides position_ids from generate
    assert batched.generate_ids(model, tok, prompts, max_new_tokens=6) == shared and prefill[0][1] == len(prompts[order[0]])
    monkeypatch.setattr(model, "forward", real_forward)
    monkeypatch.setattr(batched, "SHARED_PREFIX_MIN", 10**6)
    plain = batched.generate_ids(model, tok, prompts, max_new_tokens=6)
    alone = [batched.generate_ids(model, tok, [p], max_new_tokens=6)[0] for p in prompts]
    assert shared == plain == alone and all(len(a) == 6 for a in alone)


def test_last_logits_of_a_batch_match_each_prompt_alone(tiny_model):
    import torch

    loaded = load_model(tiny_model)
    tok = loaded.tokenizer
    prompts = [tok(t).input_ids for t in ["a b c d e f g", "Hi", "The sea is blue and deep"]]
    together = {}
    for idx, logits in batched.last_logits(loaded.model, tok, prompts, batch_size=3):
        together |= dict(zip(idx, logits))
    assert sorted(together) == [0, 1, 2]
    for i, p in enumerate(prompts):
        with torch.inference_mode():
            alone = loaded.model(input_ids=torch.tensor([p])).logits[0, -1].float()
        assert torch.allclose(together[i], alone, atol=1e-4), i


@pytest.mark.parametrize("user", ["judge", "mmlu", "eval"])
def test_local_judges_mmlu_and_eval_all_go_through_the_batched_path(tiny_model, monkeypatch, user):
    """A speed-up of the batched path lands everywhere: each user calls it, not a copy of its own."""
    import ftaudit.capability.mmlu as mmlu
    from ftaudit.generate import GenerationConfig, generate_responses, hf
    from ftaudit.judges import llama_guard, local, strongreject_ft

    seen = []
    for module, name in ((hf, "generate_ids"), (local, "generate_ids"), (strongreject_ft, "last_logits"), (mmlu, "last_logits")):
        real = getattr(batched, name)
        monkeypatch.setattr(module, name, lambda *a, _r=real, _n=name, **k: seen.append(_n) or _r(*a, **k))
    loaded = load_model(tiny_model)
    if user == "eval":
        generate_responses(loaded, ["Hi"], GenerationConfig(max_new_tokens=2))
        assert seen == ["generate_ids"]
    elif user == "judge":
        judge = llama_guard.LlamaGuardJudge(model=tiny_model)
        judge._loaded = loaded
        judge.judge(["Hi"], ["Hello"])
        assert seen == ["generate_ids"]
    else:
        items = [mmlu.MMLUItem("q1", "s", "2+2?", ("1", "2", "3", "4"), "D")]
        mmlu.score_mmlu(loaded, items, {"s": []})
        assert seen == ["last_logits"]
