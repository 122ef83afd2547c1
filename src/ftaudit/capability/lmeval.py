"""lm-evaluation-harness tasks on the model under audit (adapter already merged), through lm-eval's
Python API with ftaudit's loaded model (``HFLM(pretrained=<model object>)``), not a re-implementation.

Most tasks (HellaSwag, ARC, MMLU, GSM8K) download their data from the hub; offline they fail with
one line saying so. Local tasks work through ``include_path`` (a folder of lm-eval task YAMLs).
"""

from __future__ import annotations

import logging

from ..errors import FtauditError

_PREFERRED = ("acc", "acc_norm", "exact_match", "f1")


def run_lmeval(loaded, task: str, limit: int | None = None, include_path: str | None = None,
               batch_size: int = 8, num_fewshot: int | None = None) -> list[dict]:
    """Per-item rows ``{"id", "subject", "value", "details"}`` for one lm-eval task."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise FtauditError("lm-evaluation-harness is not installed; pip install 'ftaudit[lmeval]'") from None
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=batch_size, device=str(loaded.model.device))
    manager = TaskManager(include_path=include_path) if include_path else TaskManager()
    if task not in manager.all_tasks:
        raise FtauditError(f"unknown lm-eval task '{task}'; see `lm-eval ls tasks` or pass --lmeval-include DIR for local task YAMLs")
    try:
        out = lm_eval.simple_evaluate(model=lm, tasks=[task], limit=limit, log_samples=True, task_manager=manager,
                                      num_fewshot=num_fewshot, bootstrap_iters=0)
    except Exception as exc:  # dataset download errors come in many types
        text = f"{type(exc).__name__}: {exc}"
        if any(k in text for k in ("Connection", "resolve", "offline", "Offline", "hub", "404", "Max retries")):
            raise FtauditError(f"lm-eval task '{task}' needs its data from the Hugging Face hub, which is not reachable; "
                               "run where the hub is reachable or use a local task") from None
        raise
    rows = []
    for name, samples in out["samples"].items():
        for s in samples:
            key = next((k for k in _PREFERRED if k in s), None) or next(k for k, v in s.items()
                                                                        if isinstance(v, (int, float)) and k != "doc_id")
            rows.append({"id": f"{name}-{s['doc_id']}", "subject": name, "value": float(s[key]), "details": {"metric": key}})
    return rows
