"""Customer tasks: benign fine-tuning jobs with a held-out metric, so a defense is judged on what it lets through.

One module per task, registered by name (:func:`register_task`); ``date-iso`` is built in.
"""

from . import date_iso  # noqa: F401  (register the built-in tasks)
from .base import TASKS, CustomerTask, TaskItem, get_task, register_task, score_responses

__all__ = ["TASKS", "CustomerTask", "TaskItem", "get_task", "register_task", "score_responses"]
