"""The base of the local classifier judges, run through transformers and loaded from any source ftaudit resolves:
``llama-guard`` (:mod:`.llama_guard`), ``harmbench-cls`` (:mod:`.harmbench_cls`), ``strongreject-ft``
(:mod:`.strongreject_ft`). Real guard models need the hub (or a local copy); tests use tiny random models for
plumbing and parsing.
"""

from __future__ import annotations

from ..generate.batched import CPU_SCORE_BATCH, generate_ids
from ..models import load_model
from .base import Judge


class LocalModelJudge(Judge):
    """Subclasses set ``template`` before calling this ``__init__``, which names the judge version once."""

    needs = "hub"
    default_model = ""
    max_new_tokens = 8
    template = ""

    def __init__(self, model: str | None = None, batch_size: int | None = None, **_):
        import hashlib

        from ..models import model_fingerprint

        self.model_location = model or self.default_model
        self.batch_size = batch_size
        self._loaded = None
        # the version names the judge model's weights (fingerprint) and its prompt template: another model or
        # template re-judges instead of reusing cached verdicts
        self.version = (f"{type(self).version}+{model_fingerprint(self.model_location)}"
                        f"+{hashlib.sha256(self.template.encode()).hexdigest()[:12]}")
        from ..models.loading import default_dtype

        if dtype := default_dtype(self.model_location):  # the judge model loaded in another dtype than its own
            self.version += f"+{dtype}"

    @property
    def loaded(self):
        if self._loaded is None:
            self._loaded = load_model(self.model_location)
        return self._loaded

    def inputs(self, prompt: str, response: str) -> str:
        raise NotImplementedError

    add_special_tokens = False  # True where the prompt is raw text the classifier saw after its tokenizer's BOS

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.loaded.tokenizer(texts, add_special_tokens=self.add_special_tokens).input_ids

    def _generate(self, texts: list[str]) -> list[str]:
        """Greedy answers through the batched path every local model shares (:mod:`ftaudit.generate.batched`)."""
        tok = self.loaded.tokenizer
        # a verdict of a few tokens is mostly one prompt pass: batch 8 on CPU (40 HarmBench prompts: batch 4 33.3 s,
        # 8 29.8 s, 40 40.7 s, the same verdicts)
        new = generate_ids(self.loaded.model, tok, self.encode(texts), max_new_tokens=self.max_new_tokens,
                           batch_size=self.batch_size, cpu_batch=CPU_SCORE_BATCH, description=self.name)
        return [tok.decode(ids, skip_special_tokens=True) for ids in new]

    def provenance(self, template: str) -> dict:
        import hashlib

        return {"judge_model": self.model_location, "template_hash": hashlib.sha256(template.encode()).hexdigest()[:12]}
