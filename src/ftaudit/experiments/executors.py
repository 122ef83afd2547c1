"""Where grid points run: one after another in this process (``local``), or as Ray tasks (``ray``).

Ray schedules each point with the spec's ``resources`` (CPUs, GPUs, memory), on a local instance
(``address=None``) or a cluster (``address="auto"`` or ``ray://HOST:10001``). Every worker writes into the
same run directory (SQLite in WAL mode), so the run directory must be on storage all workers see and
ftaudit must be installed on every node. A failed point does not stop the others; rerunning the same
command resumes from what finished.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

from ..errors import FtauditError
from ..progress import console, progress_bar
from .spec import Resources

EXECUTORS = ("local", "ray")


def check_executor(executor: str) -> None:
    """Fail before any work when the executor is unknown or its engine is missing."""
    if executor not in EXECUTORS:
        raise FtauditError(f"unknown executor '{executor}'; use one of {', '.join(EXECUTORS)}")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise FtauditError("--executor ray needs Ray: pip install 'ftaudit[ray]'") from None


def run_points(fn: Callable, jobs: Sequence, *, executor: str = "local", resources: Resources | None = None,
               address: str | None = None) -> list:
    """``[fn(job) for job in jobs]``, in this process or as Ray tasks; results keep the order of ``jobs``."""
    if executor == "local":
        results = []
        for i, job in enumerate(jobs, 1):
            console.print(f"[bold]grid point {i}/{len(jobs)}[/] {job.label}", highlight=False)
            results.append(fn(job))
        return results
    check_executor(executor)
    return _run_on_ray(fn, jobs, resources or Resources(), address)


def _run_on_ray(fn: Callable, jobs: Sequence, resources: Resources, address: str | None) -> list:
    import ray
    from ray.exceptions import RayError, RayTaskError

    started_here = not ray.is_initialized()
    if started_here:
        env = {k: v for k, v in os.environ.items() if k.startswith(("FTAUDIT_", "HF_", "OPENAI_"))}
        try:
            ray.init(address=address, runtime_env={"env_vars": env} if env else None, include_dashboard=False,
                     logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a new local instance"
            raise FtauditError(f"cannot start Ray on {where} ({str(exc).splitlines()[0]}); check --ray-address, "
                               "or start a cluster with `ray start --head`") from None
    options = {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus, "max_retries": 0}
    if resources.memory_gb:
        options["memory"] = int(resources.memory_gb * 2**30)
    task = ray.remote(fn).options(**options)
    try:
        pending = {task.remote(job): i for i, job in enumerate(jobs)}
        results: dict[int, object] = {}
        failures: list[str] = []
        with progress_bar() as bar:
            progress = bar.add_task(f"grid points on Ray ({resources.num_cpus} CPU, {resources.num_gpus} GPU each)",
                                    total=len(jobs))
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    try:
                        results[i] = ray.get(ref)
                    except RayTaskError as exc:
                        failures.append(f"{jobs[i].label}: {exc.cause}")
                    except RayError as exc:  # a worker died (out of memory, node lost)
                        failures.append(f"{jobs[i].label}: {type(exc).__name__}")
                    bar.advance(progress)
    finally:
        if started_here:
            ray.shutdown()
    if failures:
        raise FtauditError(f"{len(failures)} of {len(jobs)} grid point(s) failed, first: {failures[0]}; "
                           "rerun the same command to resume, finished points are kept")
    return [results[i] for i in range(len(jobs))]
