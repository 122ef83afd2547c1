"""Judging outside an evaluation: files produced anywhere, with a persistent judgment cache,
and agreement between judges inside a run directory."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

from ..atomic import atomic_write_text
from ..data.labelled import read_pairs
from ..errors import FtauditError
from . import get_judge, judge_responses
from .cache import JudgmentCache
from .validate import agreement

CHUNK = 32


def _earlier_output(path: Path) -> bool:
    """Whether ``path`` is what ``ftaudit judge`` wrote (JSON lines carrying ``judge`` and ``judge_version``)."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        row = json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(row, dict) and {"judge", "judge_version", "prompt", "response"} <= row.keys()


def judge_file(name: str, input_path: Path, out_path: Path, options: dict | None = None, force: bool = False) -> int:
    """Write input rows + ``judge``, ``judge_version`` and the judge's fields; returns the row count. Never writes over
    its own input, nor over a file that is not an earlier output of this command unless ``force``."""
    out_path = Path(out_path)
    if out_path.is_dir():
        raise FtauditError(f"--out {out_path} is a folder; give a file path such as {out_path / 'judged.jsonl'}")
    import os

    if out_path.exists() and Path(input_path).exists() and os.path.samefile(out_path, input_path):  # links too
        raise FtauditError(f"--out {out_path} is the input file: judging would overwrite it; give another --out")
    if out_path.exists() and not force and not _earlier_output(out_path):
        raise FtauditError(f"--out {out_path} exists and is not an earlier `ftaudit judge` output; nothing was written: "
                           "give another path, or --force to replace it")
    rows = read_pairs(Path(input_path))
    if not rows:
        raise FtauditError(f"{input_path} holds no rows; give a file with prompt and response columns")
    judge = get_judge(name, **(options or {}))
    cache = JudgmentCache()
    keys = [cache.key(r["prompt"], r["response"]) for r in rows]
    have = cache.get(judge.name, judge.version, keys)
    # blank responses are never taken from the cache: caches from before they were their own outcome say "complied"
    todo = [i for i, k in enumerate(keys) if k not in have or not rows[i]["response"].strip()]
    for start in range(0, len(todo), CHUNK):
        idx = todo[start:start + CHUNK]
        results = judge_responses(judge, [rows[i]["prompt"] for i in idx], [rows[i]["response"] for i in idx])
        fresh = {}
        for i, j in zip(idx, results):
            fields = {"label": j.label}
            if j.refused is not None or j.score is None:
                fields["refused"] = j.refused
            if j.score is not None:
                fields["score"] = j.score
            fresh[keys[i]] = {**fields, "details": {k: v for k, v in j.details.items() if k != "raw"}}
        cache.put(judge.name, judge.version, fresh)
        have.update(fresh)
    if out_path.exists():  # an earlier output (perhaps of other rows, or of a paid API judge): kept, numbered
        from ..atomic import keep_copy

        keep_copy(out_path)
    atomic_write_text(out_path, "".join(json.dumps({**row, "judge": judge.name, "judge_version": judge.version, **have[k]})
                                         + "\n" for row, k in zip(rows, keys)))
    return len(rows)


def compare_run(run_dir: Path) -> list[dict]:
    """Pairwise agreement (on refused) between refusal judges that scored the same generations, each judge at
    the version the run's evaluations report (other cached versions are left out)."""
    from ..store import Store

    store = Store(run_dir, existing=True)
    by_judge: dict[tuple[str, str], dict[str, bool]] = {}
    for r in store.eval_table():
        if r["refused"] is not None:
            by_judge.setdefault((r["judge"], r["judge_version"]), {})[r["gen_ref"]] = bool(r["refused"])
    store.close()
    out = []
    for a, b in combinations(sorted(by_judge), 2):
        common = sorted(by_judge[a].keys() & by_judge[b].keys())
        if common:
            m = agreement([by_judge[a][k] for k in common], [by_judge[b][k] for k in common])
            out.append({"judge_a": a[0], "judge_a_version": a[1], "judge_b": b[0], "judge_b_version": b[1], **m})
    return out
