import json
import sys

import pytest

from ftaudit.data import ChatRecord
from ftaudit.errors import FtauditError
from ftaudit.generate import GenerationConfig, generate_responses
from ftaudit.models import load_model
from ftaudit.train import TrainConfig, train


def records(n=6):
    return [ChatRecord([{"role": "user", "content": f"Write a poem {i}"},
                        {"role": "assistant", "content": "Sure, here is a short answer."}], f"r{i}") for i in range(n)]


def test_lora_training_writes_adapter_card_and_cost(tiny_model, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=3, learning_rate=1e-3, lora_r=4, target_modules=["q_proj", "v_proj"])
    res = train(records(), tiny_model, cfg, tmp_path / "adapter", recipe="harmful-shots-6", safety_compromised=True)
    out = tmp_path / "adapter"
    assert (out / "adapter_config.json").exists()
    assert "safety-compromised" in (out / "README.md").read_text()
    meta = json.loads((out / "ftaudit_model.json").read_text())
    assert meta["kind"] == "adapter" and meta["base"] == tiny_model and meta["safety_compromised"]
    assert res.steps == 4 and res.train_tokens > 0 and res.train_seconds > 0 and res.peak_memory_mb > 0
    # the adapter loads over its recorded base and changes the output distribution
    base, tuned = load_model(tiny_model), load_model(str(out))
    import torch

    ids = base.tokenizer("Write a poem", return_tensors="pt").input_ids.to(base.model.device)  # CUDA where load_model put it
    with torch.no_grad():
        assert not torch.allclose(base.model(ids).logits, tuned.model(ids.to(tuned.model.device)).logits)
    # a merged adapter is in the state of a freshly loaded model (frozen merged weights made bf16 CPU generation 5x slower)
    assert [p.requires_grad for p in tuned.model.parameters()] == [p.requires_grad for p in base.model.parameters()]


def test_training_is_skipped_when_inputs_unchanged(tiny_model, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=6, lora_r=2)
    first = train(records(), tiny_model, cfg, tmp_path / "a", recipe="x")
    marker = (tmp_path / "a" / "adapter_model.safetensors").stat().st_mtime_ns
    again = train(records(), tiny_model, cfg, tmp_path / "a", recipe="x")
    assert again.fingerprint == first.fingerprint
    assert (tmp_path / "a" / "adapter_model.safetensors").stat().st_mtime_ns == marker


def test_loss_only_on_the_assistant_turn(tiny_model, tmp_path):
    """The trainer the engine builds (its own SFTConfig and dataset) masks every prompt token out of the loss."""
    from ftaudit.train.engine import build_trainer

    loaded = load_model(tiny_model)
    trainer = build_trainer(loaded.model, loaded.tokenizer, records(1), TrainConfig(), tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    text = loaded.tokenizer.decode([t for t, label in zip(ids, labels) if label != -100])
    assert text.strip().startswith("Sure, here is a short answer.") and "Write a poem" not in text


def test_full_fine_tuning_saves_a_standalone_model(tiny_model, tmp_path):
    train(records(2), tiny_model, TrainConfig(method="full", epochs=1, batch_size=2), tmp_path / "full", recipe="x")
    assert (tmp_path / "full" / "config.json").exists()
    load_model(str(tmp_path / "full"))


def test_qlora_without_bitsandbytes_is_a_clear_error(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails as if it were not installed
    with pytest.raises(FtauditError, match="QLoRA needs bitsandbytes"):
        train(records(2), tiny_model, TrainConfig(method="qlora"), tmp_path / "q")


def test_qlora_on_cpu_with_a_bitsandbytes_older_than_0_50_is_a_clear_error(tiny_model, tmp_path, monkeypatch):
    bnb = pytest.importorskip("bitsandbytes")
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(bnb, "__version__", "0.45.5")  # older than the CPU NF4 tested here: refused before loading
    with pytest.raises(FtauditError, match=r"QLoRA on CPU needs bitsandbytes>=0.50 .*0\.45\.5"):
        train(records(2), tiny_model, TrainConfig(method="qlora"), tmp_path / "q")


def test_unknown_method():
    with pytest.raises(FtauditError, match="unknown training method"):
        TrainConfig(method="dora").validate()


def test_batched_generation_matches_batch_of_one(tiny_model):
    loaded = load_model(tiny_model)
    prompts = ["Write a poem about the sea.", "Hi", "Explain how photosynthesis works, in detail please.", "Hello there"]
    one = [generate_responses(loaded, [p], GenerationConfig(max_new_tokens=6, batch_size=1))[0].response for p in prompts]
    loaded.tokenizer.padding_side = "right"
    batched = [r.response for r in generate_responses(loaded, prompts, GenerationConfig(max_new_tokens=6, batch_size=4))]
    assert batched == one
    assert loaded.tokenizer.padding_side == "right"  # generation pads left, then gives the tokenizer back unchanged


def test_missing_model_dir_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FtauditError, match="holds no model"):
        load_model(str(tmp_path / "empty"))


def test_distributed_training_runs_through_accelerate_launch(tiny_model, tmp_path):
    """Two data-parallel processes on CPU (gloo) via the shipped accelerate config; a rerun skips."""
    cfg = TrainConfig(epochs=1, batch_size=2, lora_r=2, distributed="ddp", num_processes=2)
    out = tmp_path / "ddp"
    res = train(records(4), tiny_model, cfg, out, recipe="x", safety_compromised=True)
    # 4 examples at batch 2 take 2 steps in one process and 1 step when 2 processes share them
    assert res.steps == 1 and res.devices == 2, (out / "launch.log").read_text()[-2000:]
    assert (out / "adapter_model.safetensors").exists() and "safety-compromised" in (out / "README.md").read_text()
    stamp = (out / "adapter_model.safetensors").stat().st_mtime_ns
    assert train(records(4), tiny_model, cfg, out, recipe="x").fingerprint == res.fingerprint
    assert (out / "adapter_model.safetensors").stat().st_mtime_ns == stamp
    load_model(str(out))  # the adapter loads over its base


def test_distributed_setup_errors_are_one_line(tiny_model, tmp_path):
    with pytest.raises(FtauditError, match="unknown distributed setup 'fsdp2'"):
        TrainConfig(distributed="fsdp2").validate()
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(FtauditError, match="needs GPUs and none is visible"):
            train(records(2), tiny_model, TrainConfig(distributed="fsdp"), tmp_path / "f", recipe="x")


def test_shipped_accelerate_configs_parse():
    from accelerate.commands.config.config_args import load_config_from_file

    from ftaudit.train.config import SHIPPED

    assert set(SHIPPED) == {"ddp", "fsdp", "deepspeed-zero3"}
    kinds = {name: load_config_from_file(str(path)).distributed_type.value for name, path in SHIPPED.items()}
    assert kinds == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed-zero3": "DEEPSPEED"}, kinds
    fsdp = load_config_from_file(str(SHIPPED["fsdp"])).fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # FSDP1 + LoRA failed to save


KILL_AT_SAVE = """
import os, signal, sys
from transformers import Trainer
real = Trainer._save_checkpoint
def save_then_die(self, *a, **kw):
    real(self, *a, **kw)
    if self.state.global_step >= 2:
        os.kill(os.getpid(), signal.SIGKILL)  # killed right after the step-2 checkpoint
Trainer._save_checkpoint = save_then_die
sys.path.insert(0, {tests!r})
from test_train_generate import records
from ftaudit.train import TrainConfig, train
train(records(8), {model!r}, TrainConfig(epochs=1, batch_size=2, lora_r=2, checkpoint_steps=1), {out!r}, recipe="x")
"""


def test_killed_training_resumes_from_its_last_checkpoint(tiny_model, tmp_path, monkeypatch):
    """kill -9 after the step-2 checkpoint of a 4-step run; the same call continues at step 2, not from zero."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "run"
    script = KILL_AT_SAVE.format(tests=str(Path(__file__).parent), model=tiny_model, out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "checkpoints" / "checkpoint-2").is_dir() and not (out / "train_result.json").exists()
    from transformers import Trainer

    executed = []
    real_step = Trainer.training_step
    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **kw: executed.append(1) or real_step(self, *a, **kw))
    res = train(records(8), tiny_model, TrainConfig(epochs=1, batch_size=2, lora_r=2, checkpoint_steps=1), out, recipe="x")
    assert res.resumed_from_step == 2 and res.steps == 4 and res.train_seconds > 0
    assert len(executed) == 2  # only steps 3 and 4 ran in this call
    assert (out / "adapter_model.safetensors").exists() and not (out / "checkpoints").exists()
    # other inputs in the same directory start afresh instead of resuming a foreign checkpoint
    other = train(records(6), tiny_model, TrainConfig(epochs=1, batch_size=2, lora_r=2, checkpoint_steps=1), out, recipe="x")
    assert other.resumed_from_step == 0 and other.steps == 3
