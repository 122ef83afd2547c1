"""The digest of ftaudit's own files that shape a cached artefact (an aligned model, an edited one), for its cache key.

Measured figures that ftaudit ships (``MEASURED_FILES``) live beside the data they describe but shape no model: they
are re-measured whenever what they measure changes, and must not make every user re-train or re-edit their models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

# packaged measurements, relative to the package root: the screen's benign false-positive rate (bench/screen_rates.py
# --package) and the quickstart figures a screening cites
MEASURED_FILES = ("data/builtin/screen_false_positives.json", "data/builtin/screen_reference.json")
SUFFIXES = (".py", ".json", ".jsonl", ".yaml")


def code_digest(items: Iterable[str], root: Path | None = None) -> str:
    """sha256 (hex) over every code or data file under ``items`` (files or folders relative to ``root``, default the
    package), by path and content, less :data:`MEASURED_FILES`."""
    root = Path(__file__).parent if root is None else Path(root)
    code = hashlib.sha256()
    for item in items:
        path = root / item
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            rel = f.relative_to(root).as_posix()
            if f.is_file() and f.suffix in SUFFIXES and rel not in MEASURED_FILES:
                code.update(rel.encode() + b"\0" + f.read_bytes())
    return code.hexdigest()
