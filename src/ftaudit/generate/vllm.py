"""Generation with vLLM, serving an ftaudit LoRA adapter over its base model without merging it
(``enable_lora`` + ``LoRARequest``), so every grid point of one base model shares one engine.

Chosen automatically when vLLM is installed and a CUDA GPU is visible (see :func:`ftaudit.generate.choice.select_backend`);
``FTAUDIT_GENERATION_BACKEND=hf|vllm`` forces a choice. ``FTAUDIT_VLLM_GPU_MEMORY`` (default 0.5) is the
fraction of GPU memory the engine takes, leaving room for training and capability evaluation in the same
process; engines are released before training starts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import FtauditError
from ..models import format_chat, resolve_model_location
from ..models.loading import _weights_dir, read_marker
from ..progress import progress_bar
from .base import GenerationConfig, GenerationResult, context_length, too_long

_ENGINES: dict[tuple, tuple[object, object, int]] = {}  # (base dir, quantization) -> (vllm.LLM, tokenizer, max LoRA rank)
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts
CHUNK = 256  # prompts per generate() call; results are persisted after each


def vllm_available() -> bool:
    import torch

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def _adapter_and_base(location: str) -> tuple[Path | None, Path]:
    path = Path(resolve_model_location(location))
    meta = read_marker(path) or {}
    if meta.get("kind") == "adapter":
        return path, _weights_dir(meta["base"])
    return None, _weights_dir(str(path))


def release_engines() -> None:
    """Free the GPU memory held by vLLM engines (before training in the same process)."""
    if _ENGINES:
        _ENGINES.clear()
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()


class VLLMBackend:
    name = "vllm"

    def __init__(self, location: str):
        self.adapter, base = _adapter_and_base(location)
        rank = json.loads((self.adapter / "adapter_config.json").read_text())["r"] if self.adapter else 0
        # a QLoRA adapter was trained over the 4-bit base: serve it over the base quantized the same way (and a
        # 70B base fits one GPU only so)
        trained_as = ((read_marker(self.adapter) or {}).get("train_config") or {}).get("method") if self.adapter else None
        quantization = "bitsandbytes" if trained_as == "qlora" else None
        key = (str(base), quantization)
        if key not in _ENGINES or _ENGINES[key][2] < rank:
            from transformers import AutoTokenizer
            from vllm import LLM

            release_engines()
            max_rank = next((r for r in LORA_RANKS if r >= max(rank, 64)), LORA_RANKS[-1])
            llm = LLM(model=str(base), enable_lora=True, max_lora_rank=max_rank, max_loras=1, seed=0,
                      gpu_memory_utilization=float(os.environ.get("FTAUDIT_VLLM_GPU_MEMORY", "0.5")),
                      **({"quantization": quantization} if quantization else {}))
            _ENGINES[key] = (llm, AutoTokenizer.from_pretrained(str(base)), max_rank)
        self.llm, self.tokenizer, _ = _ENGINES[key]
        self.lora_request = None
        if self.adapter:
            from vllm.lora.request import LoRARequest

            # a small integer id per adapter path; vLLM caches loaded adapters by it
            lora_id = int(hashlib.sha256(str(self.adapter.resolve()).encode()).hexdigest()[:7], 16) + 1
            self.lora_request = LoRARequest(self.adapter.name, lora_id, str(self.adapter))

    def generate(self, conversations: Sequence[list[dict]], cfg: GenerationConfig,
                 on_batch: Callable[[list[int], list[GenerationResult]], None] | None = None,
                 description: str = "generating") -> list[GenerationResult]:
        """Same contract as the HF backend; greedy unless ``cfg.temperature`` > 0."""
        if cfg.dtype:
            raise FtauditError(f"generation dtype {cfg.dtype} applies to the local transformers backend only; unset it "
                               "for this backend")
        from vllm import SamplingParams

        params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens, seed=0)
        # token ids, not text: the chat template already holds any BOS, as in the HF backend
        prompts = [{"prompt_token_ids": self.tokenizer(format_chat(self.tokenizer, conv), add_special_tokens=False).input_ids}
                   for conv in conversations]
        engine_cfg = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        limit = getattr(engine_cfg, "max_model_len", None) or context_length(None, self.tokenizer)
        skipped = too_long([len(p["prompt_token_ids"]) for p in prompts], cfg, limit)
        results: list[GenerationResult] = [GenerationResult(None, 0)] * len(prompts)
        if skipped and on_batch:
            on_batch(sorted(skipped), [results[i] for i in sorted(skipped)])
        todo = [i for i in range(len(prompts)) if i not in skipped]
        with progress_bar() as bar:
            task = bar.add_task(f"{description} (vLLM)", total=len(todo))
            for start in range(0, len(todo), CHUNK):
                idx = todo[start:start + CHUNK]
                outs = self.llm.generate([prompts[i] for i in idx], params, lora_request=self.lora_request, use_tqdm=False)
                batch = [GenerationResult(o.outputs[0].text.strip(), len(o.outputs[0].token_ids)) for o in outs]
                if on_batch:
                    on_batch(idx, batch)
                for i, r in zip(idx, batch):
                    results[i] = r
                bar.advance(task, len(batch))
        return results
