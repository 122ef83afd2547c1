"""The customer-task interface and its registry.

A customer task is what an honest customer fine-tunes for: a train split to learn from and a held-out split scored
by a deterministic rule (no judge model), so the metric is the task's own and its interval is a plain Wilson
interval of a share. Items are made by program (seeded) or read from a public package at run time; the two splits
never share an item (:meth:`CustomerTask.check_disjoint`, run by the tests on every registered task).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import FtauditError


@dataclass(frozen=True)
class TaskItem:
    id: str
    prompt: str
    answer: str  # the reference answer the customer trains on, and the one a held-out answer is scored against


class CustomerTask:
    """Subclass and register: ``name``, ``version`` (bumped whenever items or scoring change, so stored scores of an
    older version are never pooled with new ones), ``max_new_tokens`` for scoring, and the three methods."""

    name: str = ""
    version: str = ""
    max_new_tokens: int = 24
    max_items: int | None = None  # the most items one split can give, where the task has a limit
    source: str = ""  # where the items come from, recorded with every score

    def train(self, n: int, seed: int = 0) -> list[TaskItem]:
        raise NotImplementedError

    def held_out(self, n: int) -> list[TaskItem]:
        raise NotImplementedError

    def correct(self, response: str, item: TaskItem) -> bool:
        raise NotImplementedError

    @property
    def metric(self) -> str:
        return task_metric(self.name)

    def check_disjoint(self, train: Sequence[TaskItem], held: Sequence[TaskItem]) -> None:
        shared = {t.prompt for t in train} & {h.prompt for h in held}
        if shared:  # a bug in a task's generator, never a user's error: fail loudly
            raise AssertionError(f"task {self.name}: {len(shared)} prompts in both train and held-out")


def task_metric(name: str) -> str:
    """The summary's metric name of task ``name``: one per task, so two tasks never share a row
    (``task_date_iso_accuracy``)."""
    return "task_" + name.replace("-", "_") + "_accuracy"


TASKS: dict[str, Callable[[], CustomerTask]] = {}


def is_current(name: str, version: str) -> bool:
    """Whether scores of task ``name`` at ``version`` stand for the task: its registered task's current version (a
    task not registered here counts as current). Older versions' scores stay stored but never decide."""
    return name not in TASKS or TASKS[name]().version == version


def register_task(name: str):
    def wrap(cls):
        metric = task_metric(name)
        clash = [other for other in TASKS if other != name and task_metric(other) == metric]
        if clash:  # two tasks would share one summary row
            raise ValueError(f"task {name}: its metric {metric} is task {clash[0]}'s; choose another name")
        cls.name = name
        TASKS[name] = cls
        return cls
    return wrap


def get_task(name: str) -> CustomerTask:
    if name not in TASKS:
        raise FtauditError(f"unknown customer task '{name}'; known: {', '.join(sorted(TASKS))}")
    return TASKS[name]()


def score_responses(task: CustomerTask, items: Sequence[TaskItem], responses: Sequence[str | None]) -> list[dict]:
    """Per item: ``{"id", "value": 1.0 or 0.0, "details"}``; a prompt the model could not answer (None) scores 0."""
    return [{"id": it.id, "value": float(r is not None and task.correct(r, it)),
             "details": {"response": r, "answer": it.answer}} for it, r in zip(items, responses)]
