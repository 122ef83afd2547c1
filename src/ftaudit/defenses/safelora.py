"""``safelora``: Hsu et al. 2024, "Safe LoRA: the Silver Lining of Reducing Safety Risks when Fine-tuning Large
Language Models" (NeurIPS 2024, arXiv:2405.16833). A post-hoc repair of a LoRA adapter.

For every adapted weight the "alignment matrix" is ``V = W_aligned - W_unaligned`` and its projection
``C = V V^T / ||V||_F`` (the paper's fast approximation of the exact projector ``V (V^T V)^-1 V^T``). The update
``dW = B A`` is compared with its projection: when ``cos(C dW, dW) <= threshold`` the layer's update has left the
alignment subspace, and ``B`` is replaced by ``C B``. The paper's default selection is by that threshold (0.5); its
released code also selects the ``num_layers`` least similar layers (``select: number``, 10 there).

Offline, the aligned model is the released one (for the embedded default: SmolLM2 after ``align``) and the
unaligned one is the model before safety training. Deviation: modules are matched by name, not by position.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import PositiveInt

from ..errors import FtauditError
from .base import Defense, DefenseContext, register_defense


REPORT_VERSION = 3  # 2: the share of the update's norm removed, and what "unaligned" was; 3: where it came from


def alignment_projection(aligned, unaligned):
    """``C = V V^T / ||V||_F`` for ``V = aligned - unaligned`` (float32)."""
    import torch

    v = (aligned.float() - unaligned.float())
    norm = torch.linalg.norm(v)
    return v @ v.T / norm if norm > 0 else torch.zeros(v.shape[0], v.shape[0])


def _projection(A, B, C) -> tuple[object, float]:
    """(C B in B's dtype, cosine similarity of the projected update C B A and the update B A)."""
    import torch

    projected = C @ B.float()
    cos = float(torch.nn.functional.cosine_similarity((projected @ A.float()).reshape(1, -1),
                                                      (B.float() @ A.float()).reshape(1, -1)))
    return projected.to(B.dtype), cos


def project_update(A, B, C, threshold: float) -> tuple[object, float]:
    """(new B, cosine similarity of the projected and original update); B is replaced by C B when the similarity
    is at or below ``threshold``."""
    return _choose(B, _projection(A, B, C), threshold)


def _choose(B, projection: tuple[object, float], threshold: float) -> tuple[object, float]:
    """SafeLoRA's rule: the projected B when the similarity is at or below the threshold, else B unchanged."""
    projected, cos = projection
    return (projected, cos) if cos <= threshold else (B, cos)


def _base_key(adapter_key: str) -> str:
    """``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` -> ``model.layers.0.self_attn.q_proj.weight``."""
    key = adapter_key.removeprefix("base_model.model.")
    for part in (".lora_A", ".lora_B"):
        key = key.replace(part, "")
    return key


@register_defense("safelora")
@dataclass
class SafeLoRA(Defense):
    stage: ClassVar[str] = "post-hoc"
    select: Literal["threshold", "number"] = "threshold"
    threshold: float = 0.5
    num_layers: PositiveInt = 10
    unaligned_model: str | None = None  # default: the run's model before safety training

    def repair(self, ctx: DefenseContext, trained_dir: Path, out_dir: Path) -> dict:
        from safetensors.torch import load_file, save_file

        from ..atomic import atomic_dir, atomic_write_text
        from ..models import load_model
        from ..models.loading import read_marker, write_marker

        unaligned = self.unaligned_model or ctx.unaligned
        if not unaligned:
            raise FtauditError("safelora needs the model before safety training: run with align: true (the run then "
                               "knows it) or give the defense's unaligned_model parameter")
        trained_dir, out_dir = Path(trained_dir), Path(out_dir)
        meta = read_marker(trained_dir) or {}
        if meta.get("kind") != "adapter" or not (trained_dir / "adapter_model.safetensors").exists():
            raise FtauditError(f"safelora repairs LoRA adapters; {trained_dir} holds a {meta.get('kind', 'unknown')} model "
                               "(train the attack with method lora and merge: false)")
        done = out_dir / "safelora.json"
        key = {"trained": meta.get("fingerprint"), "defense": self.params(), "initial": ctx.initial, "unaligned": unaligned}
        # the stored report is reused only when it is the current report's version (REPORT_VERSION); the weights'
        # fingerprint below depends on ``key`` alone, so a richer report never makes the same weights another model
        stored = json.loads(done.read_text()) if done.exists() else {}
        if stored.get("key") == key and stored.get("report_version") == REPORT_VERSION:
            return stored["report"]
        start = time.time()
        weights = load_file(trained_dir / "adapter_model.safetensors")
        aligned_sd = load_model(ctx.initial).model.state_dict()
        unaligned_sd = load_model(unaligned).model.state_dict()
        pairs = sorted(k.replace(".lora_A.", ".lora_{}.") for k in weights if ".lora_A." in k)
        sims = {}  # lora_B key -> (C B, similarity); C itself (d_out x d_out) is not kept
        for pattern in pairs:
            a_key, b_key, base = pattern.format("A"), pattern.format("B"), _base_key(pattern.format("A"))
            if base not in aligned_sd or base not in unaligned_sd:
                raise FtauditError(f"safelora: no weight {base} in the aligned and unaligned models; they must share the "
                                   "adapter's architecture")
            sims[b_key] = _projection(weights[a_key], weights[b_key],
                                      alignment_projection(aligned_sd[base], unaligned_sd[base]))
        if self.select == "number":
            cut = sorted(s for _, s in sims.values())[:self.num_layers][-1] if sims else 0.0
        else:
            cut = self.threshold
        projected, total_sq, removed_sq = 0, 0.0, 0.0
        for b_key, projection in sims.items():
            a = weights[b_key.replace(".lora_B.", ".lora_A.")].float()
            new_b, _ = _choose(weights[b_key], projection, cut)
            update = weights[b_key].float() @ a
            total_sq += float(update.pow(2).sum())
            if new_b is not weights[b_key]:
                projected += 1
                removed_sq += float((update - new_b.float() @ a).pow(2).sum())
            weights[b_key] = new_b.contiguous()
        report = {"modules": len(pairs), "projected": int(projected), "similarity_cut": cut,
                  "mean_similarity": round(sum(s for _, s in sims.values()) / max(len(sims), 1), 4),
                  # ||dW - dW'||_F / ||dW||_F over all adapted modules together (dW = B A, the LoRA scale cancels):
                  # how much of the fine-tune's update the repair took away (C is the paper's approximate projector, so
                  # a module's share can pass 1)
                  "norm_removed": round((removed_sq / total_sq) ** 0.5, 4) if total_sq > 0 else 0.0,
                  "seconds": round(time.time() - start, 1),
                  # what "unaligned" is here: with a self-aligned model, the model before ftaudit's own align recipe,
                  # so the alignment matrix is that recipe's direction, not a vendor's safety training
                  "unaligned": unaligned,
                  "unaligned_is": "the run's model before its align recipe" if not self.unaligned_model
                  and ctx.unaligned_from == "align" else "given by the user"}
        with atomic_dir(out_dir) as tmp:
            shutil.copytree(trained_dir, tmp, dirs_exist_ok=True)
            save_file(weights, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
            import hashlib

            fingerprint = hashlib.sha256(json.dumps([meta.get("fingerprint"), self.label, key], sort_keys=True,
                                                    default=str).encode()).hexdigest()[:16]
            write_marker(tmp, **{**meta, "fingerprint": fingerprint, "defense": self.label, "repaired_from": str(trained_dir)})
            atomic_write_text(tmp / "safelora.json", json.dumps({"key": key, "report_version": REPORT_VERSION,
                                                                 "report": report}, indent=2, default=str))
        return report
