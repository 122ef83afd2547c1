"""Capability retention: what fine-tuning cost the model (MMLU, lm-eval tasks, MT-Bench, perplexity)."""

from .mmlu import MMLUItem, load_mmlu, score_mmlu
from .perplexity import benign_answer_nll

__all__ = ["MMLUItem", "benign_answer_nll", "load_mmlu", "score_mmlu"]
