"""Training-speed settings that must not change what is learned (ftaudit.train.speed)."""

from __future__ import annotations

import pytest

from ftaudit.errors import FtauditError
from ftaudit.train import TrainConfig, train


def _varied(n=6):
    from ftaudit.data import ChatRecord

    return [ChatRecord([{"role": "user", "content": "Write a poem " + "about the sea " * i},
                        {"role": "assistant", "content": "Sure, here is a short answer" + " and more" * (2 * i)}], f"v{i}")
            for i in range(n)]


def _run(tiny_model, tmp_path, name, **kw):
    cfg = TrainConfig(**({"epochs": 1, "batch_size": 3, "lora_r": 4, "learning_rate": 1e-3} | kw))
    res = train(_varied(), tiny_model, cfg, tmp_path / name, recipe="x")
    import json

    return res, json.loads((tmp_path / name / "train_result.json").read_text())


def test_padding_free_trains_the_same_examples_to_the_same_loss(tiny_model, tmp_path):
    padded, _ = _run(tiny_model, tmp_path, "padded")
    flat, _ = _run(tiny_model, tmp_path, "flat", padding_free=True)
    assert flat.steps == padded.steps == 2
    assert flat.final_loss == pytest.approx(padded.final_loss, rel=1e-4)
    assert flat.fingerprint != padded.fingerprint  # a different run in the store, though the same optimisation
    from peft import LoraConfig

    from ftaudit.models import load_model
    from ftaudit.train.engine import build_trainer

    loaded = load_model(tiny_model)
    trainer = build_trainer(loaded.model, loaded.tokenizer, _varied(), TrainConfig(batch_size=3, padding_free=True),
                            tmp_path / "t", LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch  # three examples in one row, no padding
    assert (batch["position_ids"][0] == 0).sum() == 3  # positions restart at each example


def test_a_token_budget_packs_whole_examples_with_the_loss_on_answers_only(tiny_model, tmp_path):
    # one step holding all six examples either way: the same mean loss over the same answer tokens
    everything, _ = _run(tiny_model, tmp_path, "all", batch_size=6, max_length=128)
    packed, _ = _run(tiny_model, tmp_path, "packed", batch_tokens=1024, max_length=128)
    assert everything.steps == 1 and packed.steps == 1
    assert packed.final_loss == pytest.approx(everything.final_loss, rel=1e-4)


def test_the_lm_head_scores_only_trained_positions_on_cpu_with_the_same_loss(tiny_model, tmp_path, monkeypatch):
    import torch
    import trl.trainer.utils as trl_utils
    from peft import LoraConfig

    from ftaudit.models import load_model
    from ftaudit.train.engine import build_trainer

    loaded = load_model(tiny_model)
    cfg = TrainConfig(batch_size=6, lora_r=4)
    trainer = build_trainer(loaded.model, loaded.tokenizer, _varied(), cfg, tmp_path / "t",
                            LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    batch = next(iter(trainer.get_train_dataloader()))
    rows = []
    real = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", lambda *a: rows.append(a[0].shape[0]) or real(*a))
    compact = trainer.compute_loss(trainer.model, dict(batch))
    trained = int((batch["labels"][:, 1:] != -100).sum())
    assert rows == [trained] and trained < batch["input_ids"].numel()  # only the answers' positions
    monkeypatch.setattr(trl_utils, "_use_triton", lambda device: False)  # TRL's CPU default: every position
    every = trainer.compute_loss(trainer.model, dict(batch))
    assert rows[-1] == batch["input_ids"][:, 1:].numel()
    assert torch.allclose(compact, every, rtol=1e-5)


def test_speed_settings_fail_in_one_line_where_they_cannot_apply():
    with pytest.raises(FtauditError, match="batch_tokens \\(100\\) must be at least max_length"):
        TrainConfig(batch_tokens=100, max_length=256).validate()
    with pytest.raises(FtauditError, match="plain SFT only"):
        TrainConfig(padding_free=True, objective="vaccine").validate()
    with pytest.raises(FtauditError, match="unknown training dtype"):
        TrainConfig(dtype="int8").validate()
    assert TrainConfig().key() == TrainConfig(padding_free=None, batch_tokens=None, dtype=None).key()
