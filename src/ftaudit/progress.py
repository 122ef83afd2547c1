"""One progress factory for every long loop, and a console for status lines.

On a terminal it is a Rich progress bar. When output is not a terminal (CI logs, ``| tee``), a live bar would
print nothing until the end, so plain lines are printed instead: when a task starts, at every 10% and at the end.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


class PlainProgress:
    """The subset of :class:`rich.progress.Progress` ftaudit uses, as plain log lines."""

    STEP = 0.1  # print again once another tenth is done

    def __init__(self, out: Console):
        self.out = out
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Nothing to start: lines are printed as tasks advance."""

    def stop(self) -> None:
        for task_id in self.tasks:
            self._say(task_id, final=True)

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        task_id = len(self.tasks)
        self.tasks[task_id] = {"description": description, "total": total, "completed": 0, "start": time.time(),
                               "said": -1.0, "done": False}
        self._say(task_id)
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, completed: float | None = None, advance: float | None = None,
               description: str | None = None, total: float | None = None, **_) -> None:
        t = self.tasks[task_id]
        t["completed"] = completed if completed is not None else t["completed"] + (advance or 0)
        t["description"] = description or t["description"]
        t["total"] = total if total is not None else t["total"]
        self._say(task_id)

    def _say(self, task_id: int, final: bool = False) -> None:
        t = self.tasks[task_id]
        share = t["completed"] / t["total"] if t["total"] else 0.0
        finished = bool(t["total"]) and t["completed"] >= t["total"]
        if t["done"] or not (final or finished or share - t["said"] >= self.STEP or t["said"] < 0):
            return
        t["said"], t["done"] = share, finished or final
        total = f"/{t['total']:g}" if t["total"] else ""
        self.out.print(f"{t['description']}: {t['completed']:g}{total} ({100 * share:.0f}%) "
                       f"{time.time() - t['start']:.0f}s", markup=False, highlight=False, soft_wrap=True)


def progress_bar(transient: bool = False) -> Progress | PlainProgress:
    """A Rich progress bar on a terminal, plain progress lines otherwise (``with progress_bar() as p: ...``)."""
    if not console.is_terminal:
        return PlainProgress(console)
    return Progress(TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=transient)


def say(text: str, style: str | None = None) -> None:
    """One status line: never wrapped or cropped (log-friendly), never read as markup (names may hold brackets)."""
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)
