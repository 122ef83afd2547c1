"""Where grid points run: one after another in this process (``local``), or as Ray tasks (``ray``).

Ray schedules each point with the spec's ``resources`` (CPUs, GPUs, memory), on a local instance
(``address=None``) or a cluster (``address="auto"`` or ``ray://HOST:10001``). Each Ray task works in its
own store (a snapshot of the run's store taken when it is submitted), so no two processes write one
SQLite file, which network filesystems do not support; the driver merges each point's store back when it
ends, failed or not. Workers read the initial model and write the trained one under the run directory,
so it must be on storage every node sees, and ftaudit must be installed on every node. A failed point
does not stop the others; rerunning the same command resumes from what finished.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Sequence

from ..errors import FtauditError
from ..progress import progress_bar, say
from .spec import Resources

EXECUTORS = ("local", "ray")


@contextmanager
def executor_session(executor: str, address: str | None = None):
    """Check the executor before any work; for Ray, connect (or start a local instance) now and shut down after."""
    if executor not in EXECUTORS:
        raise FtauditError(f"unknown executor '{executor}'; use one of {', '.join(EXECUTORS)}")
    if executor == "local":
        yield
        return
    try:
        import ray
    except ImportError:
        raise FtauditError("--executor ray needs Ray: pip install 'ftaudit[ray]'") from None
    if ray.is_initialized():  # the caller manages Ray
        yield
        return
    _check_reachable(address)
    env = {k: v for k, v in os.environ.items() if k.startswith(("FTAUDIT_", "HF_", "OPENAI_"))}
    try:
        ray.init(address=address, runtime_env={"env_vars": env} if env else None, include_dashboard=False,
                 logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a new local instance"
        raise FtauditError(f"cannot start Ray on {where} ({str(exc).splitlines()[0]}); check --ray-address, "
                           "or start a cluster with `ray start --head`") from None
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address must accept a connection; Ray itself retries for minutes."""
    import socket

    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise FtauditError(f"bad Ray address '{address}'; write auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise FtauditError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); check --ray-address, "
                           "or start one with `ray start --head`") from None


def run_points(fn: Callable, jobs: Sequence, *, executor: str = "local", resources: Resources | None = None,
               detach: Callable | None = None, merge: Callable | None = None) -> list:
    """``[fn(job) for job in jobs]``, in this process or as Ray tasks; results keep the order of ``jobs``.

    For Ray (call inside :func:`executor_session`), ``detach(job)`` returns the job a worker runs (with its
    own store) and ``merge(job)`` brings that store back when the task ends.
    """
    if executor == "local":
        results = []
        for i, job in enumerate(jobs, 1):
            say(f"grid point {i}/{len(jobs)} {job.label}", "bold")
            results.append(fn(job))
        return results
    return _run_on_ray(fn, jobs, resources or Resources(), detach or (lambda job: job), merge or (lambda job: None))


def _run_on_ray(fn: Callable, jobs: Sequence, resources: Resources, detach: Callable, merge: Callable) -> list:
    import ray
    from ray.exceptions import RayError, RayTaskError

    options = {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus, "max_retries": 0}
    if resources.memory_gb:
        options["memory"] = int(resources.memory_gb * 2**30)
    task = ray.remote(fn).options(**options)
    jobs = [detach(job) for job in jobs]
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
                merge(jobs[i])  # what the point finished is kept, failed or not
                bar.advance(progress)
    if failures:
        raise FtauditError(f"{len(failures)} of {len(jobs)} grid point(s) failed, first: {failures[0]}; "
                           "rerun the same command to resume, finished points are kept")
    return [results[i] for i in range(len(jobs))]
