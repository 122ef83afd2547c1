"""A customer task's held-out accuracy: greedy answers under the model's chat template, scored by the task's rule."""

from __future__ import annotations

from ..generate import GenerationConfig, generate_responses
from ..tasks import CustomerTask, TaskItem, score_responses


def score_task(loaded, task: CustomerTask, items: list[TaskItem]) -> list[dict]:
    """Per item ``{"id", "value", "details"}`` (1.0 correct, 0.0 wrong or not answered)."""
    cfg = GenerationConfig(max_new_tokens=task.max_new_tokens)
    results = generate_responses(loaded, [it.prompt for it in items], cfg, description=f"task {task.name}")
    return score_responses(task, items, [r.response for r in results])
