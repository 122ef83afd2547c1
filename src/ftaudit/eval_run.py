"""One model's evaluation as a run: what ``ftaudit eval`` and :func:`ftaudit.api.evaluate` do.

Everything a user can get wrong (dataset names and files, judges, capability tasks, the model's location, room for
the new tokens) is checked by :func:`check_eval` before a run directory is created; :func:`run_eval` then leaves out
prompts that are near-duplicates of the model's own training data, generates and judges, scores capability, validates
the offline refusal judges against people where that version has no figures yet, and writes the reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .atomic import run_dir_lock
from .defaults import DEFAULT_BENIGN_SETS, DEFAULT_EVAL_JUDGES, DEFAULT_HARMFUL_SETS
from .errors import FtauditError
from .evaluation import EvalSet, eval_sets_from
from .generate import GenerationConfig
from .pipeline import StageRunner
from .progress import say
from .store import Store


@dataclass
class EvalRequest:
    """What to evaluate and how. ``datasets``/``benign`` None: the defaults (``advbench@40``, ``harmbench@40`` and
    ``benign@40``), unless only capability tasks are asked for."""

    model: str
    out: str | Path
    datasets: list[str] | None = None
    benign: list[str] | None = None
    judges: list[str] = field(default_factory=lambda: list(DEFAULT_EVAL_JUDGES))
    judge_options: dict = field(default_factory=dict)  # base_url, model, policy, policy_file, template_file
    capability: list[str] = field(default_factory=list)  # mmlu | benign-nll | mtbench | lmeval:TASK
    capability_limit: int | None = None
    shots: int = 0
    lmeval_include: str | None = None
    name: str | None = None  # shown in reports (default: the model directory's name)
    column: str | None = None  # prompt column of CSV/JSON(L) dataset files
    system_prompt: str | None = None
    max_new_tokens: int = 32
    batch_size: int | None = None
    dtype: str | None = None  # auto | float32 | bfloat16 | float16; None: the weights' own
    show_responses: bool = False

    @property
    def label(self) -> str:
        return self.name or Path(self.model).name


def check_eval(req: EvalRequest) -> list[EvalSet]:
    """Every check that needs no model loaded: the evaluation sets (files read now), judges, capability tasks, the
    model's location and its room for the new tokens. Returns the sets."""
    from .capability.run import check_tasks
    from .judges import check_judges
    from .models import check_model_location

    from .models.dtype_choice import DTYPES

    if req.max_new_tokens < 1 or (req.batch_size is not None and req.batch_size < 1) or not 0 <= req.shots <= 5 \
            or (req.capability_limit is not None and req.capability_limit < 1):
        raise FtauditError(f"max_new_tokens {req.max_new_tokens}, batch_size {req.batch_size}, shots {req.shots}, "
                           f"capability_limit {req.capability_limit}: give at least 1 new token, a batch of at least 1, "
                           "0-5 MMLU shots and at least 1 capability item")
    if req.dtype not in DTYPES:
        raise FtauditError(f"unknown generation dtype '{req.dtype}'; use auto, float32, bfloat16 or float16")
    datasets, benign = req.datasets, req.benign
    if datasets is None and benign is None and not req.capability:
        datasets, benign = list(DEFAULT_HARMFUL_SETS), list(DEFAULT_BENIGN_SETS)
    sets = eval_sets_from(datasets or [], benign or [], req.column)
    check_judges(req.judges if sets else [], req.judge_options)
    check_tasks(req.capability)
    check_model_location(req.model)
    if sets:
        from .models.loading import check_generation_room

        check_generation_room(req.max_new_tokens, req.model)
    return sets


def run_eval(req: EvalRequest) -> dict:
    """Evaluate one model into ``req.out`` (resumable: rerun the same request after a kill) and return the summary."""
    from .report import write_reports

    sets = check_eval(req)
    client = None
    if "mtbench" in req.capability:
        from .clients import ChatClient

        client = ChatClient.from_env(req.judge_options.get("base_url"), req.judge_options.get("model"))
    with run_dir_lock(req.out):
        sets = _held_out(req, sets)
        store = Store(req.out)
        try:
            gen = GenerationConfig(max_new_tokens=req.max_new_tokens, batch_size=req.batch_size,
                                   system_prompt=req.system_prompt, dtype=req.dtype)
            StageRunner(store).evaluate(req.label, "none", req.model, sets, gen, req.judges, req.capability,
                                        req.capability_limit, judge_options=req.judge_options, shots=req.shots,
                                        judge_client=client, lmeval_include=req.lmeval_include)
        finally:
            store.close()
        if sets:
            from .judges.validate import ensure_validated

            ensure_validated(req.judges, req.judge_options)  # so the report says how far to trust each refusal judge
        return write_reports(req.out, req.show_responses)


def _held_out(req: EvalRequest, sets: list[EvalSet]) -> list[EvalSet]:
    """Leave out prompts that are near-duplicates of the data the model was fine-tuned on (where a local model records
    it), counted in ``held_out.json`` and the report."""
    from .held_out import exclude_near_duplicates, record, trained_prompts

    trained, files = trained_prompts(req.model)
    if not (trained and sets):
        return sets
    sets, dropped = exclude_near_duplicates(sets, trained)
    record(req.out, dropped, files)
    if any(dropped.values()):
        say("left out as near-duplicates of the model's training data: "
            + ", ".join(f"{k} {v}" for k, v in dropped.items() if v), "yellow")
    return sets


__all__ = ["EvalRequest", "check_eval", "run_eval"]
