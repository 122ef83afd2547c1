"""FSDP2 + LoRA saving, run for real on CPU processes (gloo).

accelerate 1.15 enables FSDP only on accelerator devices (on CPU it silently falls back to DDP), so the
trainer cannot be launched with FSDP here; these tests shard a PEFT model with torch's own ``fully_shard``
over a CPU mesh, take an optimizer step, and run ftaudit's save path on it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ftaudit.errors import FtauditError

WORKER = textwrap.dedent("""
    import os, sys, json, torch, torch.distributed as dist

    def main(rank, world, model_dir, out, port, save):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        dist.init_process_group("gloo", rank=rank, world_size=world)
        from peft import LoraConfig, get_peft_model
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        from transformers import AutoModelForCausalLM
        from ftaudit.train.save import is_sharded, save_sharded

        torch.manual_seed(0)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                               LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        mesh = init_device_mesh("cpu", (world,))
        for layer in model.base_model.model.model.layers:  # what accelerate's TRANSFORMER_BASED_WRAP does
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
        ids = torch.randint(3, 100, (2, 12))
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        assert is_sharded(model)
        full = {n: p.full_tensor().detach() for n, p in model.named_parameters() if p.requires_grad}
        if save == "ftaudit":
            save_sharded(model, out, is_main=rank == 0)
        elif rank == 0:  # what a plain save_pretrained writes from a sharded model
            model.save_pretrained(out, state_dict={k: v.to_local() for k, v in model.state_dict().items()})
        if rank == 0:
            torch.save(full, os.path.join(out, "expected.pt"))
        dist.barrier()
        dist.destroy_process_group()

    if __name__ == "__main__":
        model_dir, out, save = sys.argv[1:4]
        s = __import__("socket").socket(); s.bind(("127.0.0.1", 0)); port = str(s.getsockname()[1]); s.close()
        torch.multiprocessing.spawn(main, args=(2, model_dir, out, port, save), nprocs=2)
""")


def _run(tmp_path, tiny_model, save: str):
    out = tmp_path / save
    out.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = subprocess.run([sys.executable, str(script), tiny_model, str(out), save], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _trainable(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    return get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                          LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))


def test_fsdp2_lora_adapter_is_saved_whole_from_sharded_processes(tiny_model, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ftaudit.train.save import check_saved

    out = _run(tmp_path, tiny_model, "ftaudit")
    expected = torch.load(out / "expected.pt")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(out))
    loaded = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert set(loaded) == set(expected) and len(expected) == 8  # 2 layers x (q, v) x (A, B)
    for name, tensor in expected.items():
        assert torch.equal(loaded[name], tensor), name  # the trained values, gathered whole from both shards
    assert any(t.abs().sum() > 0 for n, t in expected.items() if "lora_B" in n)  # B starts at zero: it trained
    check_saved(_trainable(tiny_model), out)  # every trainable tensor is there, whole


def test_a_sharded_save_is_caught_by_the_check(tiny_model, tmp_path):
    from ftaudit.train.save import check_saved

    out = _run(tmp_path, tiny_model, "shard")
    with pytest.raises(FtauditError, match="lack the full trained tensor"):
        check_saved(_trainable(tiny_model), out)


def test_fsdp_on_cpu_is_refused_rather_than_run_as_ddp(tiny_model, tmp_path):
    import torch

    from ftaudit.train import TrainConfig, train

    if torch.cuda.is_available():
        pytest.skip("CPU-only refusal")
    from test_train_generate import records

    with pytest.raises(FtauditError, match="needs CUDA GPUs; on CPU accelerate would train with plain DDP"):
        train(records(2), tiny_model, TrainConfig(distributed="fsdp", num_processes=2), tmp_path / "f", recipe="x")


def test_the_save_check_reads_deepspeed_zero3_partitioned_shapes(tmp_path):
    """Under ZeRO-3 a rank's parameter is an empty partition whose whole shape is ``ds_shape``."""
    import torch
    from safetensors.torch import save_file

    from ftaudit.train.save import check_saved

    class Partitioned(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lora_A = torch.nn.Parameter(torch.empty(0))
            self.lora_A.ds_shape = torch.Size([2, 32])

    save_file({"base_model.model.lora_A": torch.zeros(2, 32)}, str(tmp_path / "adapter_model.safetensors"))
    check_saved(Partitioned(), tmp_path)  # the whole tensor was gathered on save
    save_file({"base_model.model.lora_A": torch.zeros(1, 32)}, str(tmp_path / "adapter_model.safetensors"))
    with pytest.raises(FtauditError, match="lack the full trained tensor lora_A"):
        check_saved(Partitioned(), tmp_path)
