"""Training-speed settings that do not change what is learned: the LM head scores only the trained tokens, and
batches carry no padding (padding-free) or are packed to a token budget.

TRL 1.16's fused LM head scores only the positions with a label on Triton devices, and every position
elsewhere, to keep tile shapes fixed for compilers such as Neuron's. On CPU nothing is compiled, so ftaudit
lets it score only the trained (final assistant turn) positions there too: the same log-probabilities, and
on the packaged 135M model (vocabulary 49,152) the LM head was 40% of a LoRA step's time.
"""

from __future__ import annotations

_PATCHED = False


def score_trained_positions_only() -> None:
    """Make TRL's fused LM head compact the labelled positions on CPU as it does on Triton devices (once per process)."""
    global _PATCHED
    if _PATCHED:
        return
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:  # another TRL version: leave it as it is
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    _PATCHED = True


def packing_args(cfg) -> dict:
    """SFTConfig fields for ``cfg.padding_free`` and ``cfg.batch_tokens``.

    ``padding_free``: each batch of ``batch_size`` examples is concatenated into one row with per-example
    position ids (attention stays within each example), so no compute goes to padding; the examples and the
    number of steps are those of the padded run. ``batch_tokens``: examples are packed (TRL's best-fit
    decreasing) into rows of at most ``max_length`` tokens, ``batch_tokens // max_length`` rows a step, so a step
    holds a token budget rather than a number of examples (fewer, fuller steps: a different optimisation)."""
    if cfg.batch_tokens:
        return {"packing": True, "packing_strategy": "bfd", "padding_free": True,
                "per_device_train_batch_size": max(1, cfg.batch_tokens // cfg.max_length)}
    return {}


def padding_free_collator(tokenizer, cfg):
    """The collator of a padding-free run without packing (TRL refuses ``padding_free`` with a ``max_length`` unless
    it packs, since it would not truncate; here its dataset preparation truncates first, so the collator alone
    flattens each batch)."""
    if not cfg.padding_free or cfg.batch_tokens:
        return None
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                                           padding_free=True)
