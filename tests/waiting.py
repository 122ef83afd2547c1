"""Waiting on a subprocess by its progress, not by the clock: a loaded CI host makes a run slower, not stuck."""

from __future__ import annotations

import time
from pathlib import Path


def wait_on_progress(proc, out: Path, done, idle: float = 600) -> bool:
    """Poll ``done()`` while ``proc`` runs; give up only after ``idle`` seconds in which no file under ``out`` changed
    (its size or modification time), so the wait never runs out while the run is still working. Returns ``done()``:
    a caller asserts it, so a stalled run fails the test instead of being killed at the wrong moment."""
    def state():
        return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*") if p.is_file()) \
            if out.exists() else []

    last, seen = time.time(), state()
    while proc.poll() is None and not done():
        time.sleep(0.2)
        now = state()
        if now != seen:
            last, seen = time.time(), now
        elif time.time() - last > idle:
            break
    return bool(done())
