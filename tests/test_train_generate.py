import json

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

    ids = base.tokenizer("Write a poem", return_tensors="pt").input_ids
    with torch.no_grad():
        assert not torch.allclose(base.model(ids).logits, tuned.model(ids).logits)


def test_training_is_skipped_when_inputs_unchanged(tiny_model, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=6, lora_r=2)
    first = train(records(), tiny_model, cfg, tmp_path / "a", recipe="x")
    marker = (tmp_path / "a" / "adapter_model.safetensors").stat().st_mtime_ns
    again = train(records(), tiny_model, cfg, tmp_path / "a", recipe="x")
    assert again.fingerprint == first.fingerprint
    assert (tmp_path / "a" / "adapter_model.safetensors").stat().st_mtime_ns == marker


def test_loss_only_on_the_assistant_turn(tiny_model):
    """The prompt-completion format masks every prompt token out of the loss."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ftaudit.train.engine import _to_prompt_completion

    loaded = load_model(tiny_model)
    ds = Dataset.from_list(_to_prompt_completion(records(1)))
    trainer = SFTTrainer(model=loaded.model, args=SFTConfig(output_dir="/tmp/unused", report_to="none", use_cpu=True,
                                                            completion_only_loss=True),
                         train_dataset=ds, processing_class=loaded.tokenizer)
    row = trainer.train_dataset[0]
    completion_ids = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
    text = loaded.tokenizer.decode(completion_ids)
    assert "Sure, here is a short answer." in text and "Write a poem" not in text


def test_full_fine_tuning_saves_a_standalone_model(tiny_model, tmp_path):
    train(records(2), tiny_model, TrainConfig(method="full", epochs=1, batch_size=2), tmp_path / "full", recipe="x")
    assert (tmp_path / "full" / "config.json").exists()
    load_model(str(tmp_path / "full"))


def test_qlora_without_cuda_is_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(FtauditError, match="QLoRA needs a CUDA GPU"):
        train(records(2), tiny_model, TrainConfig(method="qlora"), tmp_path / "q")


def test_unknown_method():
    with pytest.raises(FtauditError, match="unknown training method"):
        TrainConfig(method="dora").validate()


def test_batched_generation_matches_batch_of_one(tiny_model):
    loaded = load_model(tiny_model)
    prompts = ["Write a poem about the sea.", "Hi", "Explain how photosynthesis works, in detail please.", "Hello there"]
    one = [generate_responses(loaded, [p], GenerationConfig(max_new_tokens=6, batch_size=1))[0].response for p in prompts]
    batched = [r.response for r in generate_responses(loaded, prompts, GenerationConfig(max_new_tokens=6, batch_size=4))]
    assert batched == one
    assert loaded.tokenizer.padding_side == "right" or loaded.tokenizer.padding_side == "left"


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

    from ftaudit.train.launch import SHIPPED

    assert set(SHIPPED) == {"ddp", "fsdp", "deepspeed-zero3"}
    kinds = {name: load_config_from_file(str(path)).distributed_type.value for name, path in SHIPPED.items()}
    assert kinds == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed-zero3": "DEEPSPEED"}, kinds
    assert load_config_from_file(str(SHIPPED["fsdp"])).fsdp_config["fsdp_use_orig_params"] is True
