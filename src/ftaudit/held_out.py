"""Held-out stays held-out for the user's own data: evaluated prompts with a near-duplicate among training data the
user supplied are left out of the evaluation, and counted.

The named datasets' splits already keep their train and eval prompts apart (:mod:`ftaudit.data.splits`); a file the
user brings (a harmful-shots ``answers:`` file, a benign recipe's local ``source``, ``--data`` of a customer job, a
model fine-tuned elsewhere on its own data) is outside that rule. Every evaluation of a run checks its candidate
prompts against all of it with the split rule's measure (word-set Jaccard >= 0.6) and leaves the hits out of every
model's evaluation (so comparisons stay paired); ``held_out.json`` in the run directory records how many per set, and
the report shows it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .atomic import atomic_write_text
from .data.splits import near_duplicates_of

FILE = "held_out.json"


def trained_prompts(location: str) -> tuple[list[str], list[str]]:
    """(prompts, training files) a local model was fine-tuned on, following its recorded base models (an adapter over
    an attacked model over an aligned one); a model from the hub or a short name has none recorded."""
    from .models import resolve_model_location
    from .models.loading import read_marker

    prompts, files, seen = [], [], set()
    try:
        path = Path(resolve_model_location(location))
    except Exception:  # noqa: BLE001 - an unresolvable name has no local training data to read
        return [], []
    while path.is_dir() and path.resolve() not in seen:
        seen.add(path.resolve())
        data = path / "train_data.jsonl"
        if data.is_file():
            prompts += _recorded_prompts(data)
            files.append(str(data))
        base = (read_marker(path) or {}).get("base")
        if not base:
            break
        path = Path(base)
    return prompts, files


def _recorded_prompts(path: Path) -> list[str]:
    """The user turns a model was trained on, as ftaudit recorded them (``train_data.jsonl``): read as they are, so a
    model trained before a stricter input check is still evaluated (only its prompts matter here)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            messages = json.loads(line).get("messages") or []
        except (ValueError, AttributeError):
            continue
        out += [m["content"] for m in messages if isinstance(m, dict) and m.get("role") == "user"
                and isinstance(m.get("content"), str)][-1:]
    return out


def recipe_prompts(recipe: str, params: dict) -> tuple[list[str], list[str]]:
    """(prompts, files) a recipe would train on from files the user supplies (not the named datasets' train splits)."""
    from .data import load_chat_records

    prompts, files = [], []
    if params.get("answers"):
        prompts += [r.last_user_prompt for r in load_chat_records(params["answers"])]
        files.append(str(params["answers"]))
    source = params.get("source")
    if recipe == "benign" and source and Path(source).expanduser().exists():
        prompts += _local_instructions(params.get("dataset", "benign"), source)
        files.append(str(source))
    return prompts, files


def _local_instructions(dataset: str, source: str) -> list[str]:
    """Every instruction in a local copy of a hub dataset the benign recipe reads (a superset of what it picks)."""
    if dataset == "llava":
        from .data.llava import load_llava

        conversations, _ = load_llava(source)
        return [c.last_user_prompt for c in conversations]
    from .data.loaders import hub_dataset
    from .recipes.benign import HUB

    if dataset not in HUB:
        return []
    _, q, extra, _ = HUB[dataset]
    rows, _ = hub_dataset(source, "train")
    return [f"{row[q]}\n\n{row.get(extra) or ''}".strip() for _, row in rows]


def exclude_near_duplicates(sets: list, training: list[str]) -> tuple[list, dict[str, int]]:
    """The evaluation sets with every prompt that near-duplicates a ``training`` text left out (before any @N
    subsample, so @N still gives N), and how many each set lost."""
    out, dropped = [], {}
    for s in sets:
        records = replace(s, limit=None, offset=0, exclude=()).prompts()
        hits = near_duplicates_of([r.prompt for r in records], training) if training else []
        dropped[s.label] = len(hits)
        out.append(replace(s, exclude=tuple(sorted({*s.exclude, *(records[i].id for i in hits)}))))
    return out, dropped


def record(run_dir: str | Path, dropped: dict[str, int], files: list[str]) -> None:
    """Write (or add to) ``run_dir/held_out.json``: per set, how many prompts were left out, and the files checked."""
    path = Path(run_dir) / FILE
    old = read(run_dir)
    merged = {**old.get("left_out_near_duplicates", {}), **dropped}
    sources = sorted({*old.get("training_files", []), *files})
    atomic_write_text(path, json.dumps({"left_out_near_duplicates": merged, "training_files": sources,
                                        "rule": "word-set Jaccard >= 0.6 with any training prompt"}, indent=2))


def read(run_dir: str | Path) -> dict:
    try:
        return json.loads((Path(run_dir) / FILE).read_text())
    except (OSError, ValueError):
        return {}
