"""Labelled replies read offline: (prompt, response, refused) rows for validating judges against people, and the
(prompt, response) pairs of a file produced anywhere.

Label sets:
  pyrit-refusal        ``pyrit==1.1.0`` ``scorer_evals/refusal_scorer/refusal.csv``: 105 replies labelled by people
  pyrit-refusal-extra  the same package's ``refusal_extra.csv``: 64 more human labels
  uncensorbench        ``uncensorbench==0.3.7`` ``data/prompts.json``: 150 harmful prompts, each with a *written*
                       refusal and a written compliant reply (300 rows; written, not real model output)
  a user's file        (prompt, response, label); label 1/0, true/false, refusal/compliance or XSTest's
                       1_full_compliance / 2_full_refusal / 3_partial_refusal (partial counts as refused)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

from ..errors import FtauditError
from ..sources import resolve
from .loaders import _read_jsonl, _text

PYRIT_REFUSAL = "pypi:pyrit==1.1.0/pyrit/datasets/scorer_evals/refusal_scorer"


UNCENSORBENCH = "pypi:uncensorbench==0.3.7/uncensorbench/data/prompts.json"


Rows = list[tuple[str, str, bool]]


def pyrit_csv(location: str) -> list[dict]:
    """Rows of one of pyrit's scorer-eval CSVs (its ``#`` comment lines skipped)."""
    text = resolve(location).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO("".join(line for line in text.splitlines(True) if not line.startswith("#")))))


def pyrit_refusal_labels(name: str) -> Rows:
    """(objective, response, refused) rows of a pyrit refusal-scorer CSV."""
    return [(r["objective"], r["assistant_response"], r["human_score"].strip() == "1")
            for r in pyrit_csv(f"{PYRIT_REFUSAL}/{name}.csv")]


def uncensorbench_replies() -> Rows:
    """Each prompt twice: with its written refusal (refused) and its written compliant reply (not refused)."""
    data = json.loads(resolve(UNCENSORBENCH).read_text(encoding="utf-8"))["prompts"]
    return [row for p in data for row in ((p["prompt"], p["censored_response"], True),
                                          (p["prompt"], p["uncensored_response"], False))]


# name -> (what it is, loader)
LABEL_SETS: dict[str, tuple[str, Callable[[], Rows]]] = {
    "pyrit-refusal": ("human labels, pyrit refusal.csv", lambda: pyrit_refusal_labels("refusal")),
    "pyrit-refusal-extra": ("human labels, pyrit refusal_extra.csv", lambda: pyrit_refusal_labels("refusal_extra")),
    "uncensorbench": ("written refusal + compliant reply per prompt", uncensorbench_replies),
}


REFUSED_LABELS = {"1", "true", "refusal", "refused", "yes", "2_full_refusal", "3_partial_refusal", "full_refusal",
                  "partial_refusal"}


COMPLIED_LABELS = {"0", "false", "compliance", "complied", "no", "1_full_compliance", "full_compliance"}


def user_labels(path: str | Path) -> Rows:
    """A user's (prompt, response, label) file, JSONL or CSV."""
    rows = []
    for n, row in enumerate(read_pairs(Path(path)), 1):
        label = str(row.get("label", "")).strip().lower()
        if label not in REFUSED_LABELS | COMPLIED_LABELS:
            raise FtauditError(f"{path}: row {n} has label {row.get('label')!r}; use 1/0, refusal/compliance or "
                               "1_full_compliance / 2_full_refusal / 3_partial_refusal")
        rows.append((row["prompt"], row["response"], label in REFUSED_LABELS))
    if not rows:
        raise FtauditError(f"{path} holds no rows")
    return rows


def read_pairs(path: Path) -> list[dict]:
    if not path.is_file():
        raise FtauditError(f"no such file: {path}")
    if path.suffix == ".jsonl":
        rows = [row for _, row in _read_jsonl(path)]
    elif path.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(_text(path), newline="")))
    else:
        raise FtauditError(f"{path}: use .jsonl or .csv with prompt and response columns")
    for n, row in enumerate(rows, 1):
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("response"), str):
            raise FtauditError(f"{path}: row {n} lacks a string 'prompt' or 'response'")
    return rows
