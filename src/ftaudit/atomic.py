"""Writes that a kill cannot leave half done: write beside the target, then rename over it (atomic on POSIX),
and a lock for files several processes update (read-modify-write)."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")


@contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path beside ``path`` to write; when the block finishes it replaces ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` in one step: readers see the old content or the new, never a part."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary folder beside ``path``; when the block finishes it becomes ``path`` (replacing an old one).
    A kill inside the block leaves only the temporary folder, which nothing reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = _temp_beside(path)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def keep_copy(path: str | Path) -> Path | None:
    """Copy ``path`` to the next free ``NAME.previous-K.EXT`` beside it (K = 1, 2, ...), so replacing a file never loses
    an earlier version; returns the copy (None when there was nothing to keep)."""
    path = Path(path)
    if not path.exists():
        return None
    stem, dot, ext = path.name.partition(".")
    k = 1
    while (target := path.with_name(f"{stem}.previous-{k}{dot}{ext}")).exists():
        k += 1
    shutil.copy2(path, target)
    return target


@contextmanager
def run_dir_lock(run_dir: str | Path):
    """Hold ``run_dir/.ftaudit.lock`` while a command writes the run directory; a second process writing the same
    directory gets one line instead of interleaving its writes (two stores, two reports)."""
    from filelock import FileLock, Timeout

    from .errors import FtauditError

    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise FtauditError(f"{run_dir} is a file, not a run directory; give a directory path")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / ".ftaudit.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise FtauditError(f"{run_dir} is in use by another ftaudit process (it holds {run_dir / '.ftaudit.lock'}); wait "
                           "for it to finish, or give another --out") from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def file_lock(path: str | Path, timeout: float = 600):
    """An inter-process lock beside ``path`` (``filelock``, as the Hugging Face libraries use)."""
    from filelock import FileLock

    with FileLock(f"{path}.lock", timeout=timeout):
        yield
