"""Seeds as an axis: one attacked model per training seed, named ``NAME@seed=S``; results of the seeds of one
setting are also shown together (mean, an interval over seeds and prompts, and the per-seed spread)."""

from __future__ import annotations

import re

_SUFFIX = re.compile(r"^(?P<base>.+)@seed=(?P<seed>-?\d+)$")


def seed_name(base: str, seed: int | None) -> str:
    """``aligned+benign(n=25)@seed=1``; no suffix when a run has one seed."""
    return base if seed is None else f"{base}@seed={seed}"


def split_seed(model: str) -> tuple[str, int | None]:
    """(``aligned+benign(n=25)``, 1) from ``aligned+benign(n=25)@seed=1``; (model, None) without a seed suffix."""
    m = _SUFFIX.match(model)
    return (m["base"], int(m["seed"])) if m else (model, None)


def parse_seeds(text: str | None) -> list[int] | None:
    """``0,1,2`` -> [0, 1, 2] (CLI ``--seeds``)."""
    from .errors import FtauditError

    if not text:
        return None
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FtauditError(f"bad --seeds '{text}'; write comma-separated integers, e.g. --seeds 0,1,2") from None
    if len(set(seeds)) != len(seeds) or not seeds or min(seeds) < 0:
        raise FtauditError(f"bad --seeds '{text}'; give distinct non-negative integers, e.g. --seeds 0,1,2")
    return seeds


def check_seeds(seeds) -> list[int] | None:
    """A list of seeds from the Python API: distinct non-negative integers (None or empty: the single seed)."""
    from .errors import FtauditError

    if not seeds:
        return None
    seeds = list(seeds)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(seeds) \
            or min(seeds) < 0:
        raise FtauditError(f"bad seeds {seeds}; give distinct non-negative integers, e.g. [0, 1, 2]")
    return seeds
