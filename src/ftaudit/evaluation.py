"""Evaluation stage: generate (resumably, through the store) and judge a model on prompt sets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from .data import PromptRecord, get_prompts, load_prompts
from .data.registry import DATASETS
from .errors import FtauditError
from .generate import GenerationConfig
from .generate.cached import cached_generate
from .judges import judge_responses, shared_judge
from .models import resolve_model_location
from .models.loading import read_marker
from .progress import say
from .store import Store


@dataclass
class EvalSet:
    """A named dataset (or file) split, optionally subsampled."""

    name: str
    kind: str  # harmful | benign
    split: str = "eval"
    limit: int | None = None
    column: str | None = None  # for CSV/JSON(L) files: the column holding the prompt
    offset: int = 0  # skip the first ``offset`` of the stable order (a search set after the reported subset)
    role: str | None = None  # e.g. "search": names the set apart from the reported one (``advbench:search``)
    exclude: tuple[str, ...] = ()  # prompt ids left out before subsampling (near-duplicates of training data)

    def prompts(self) -> list[PromptRecord]:
        if self.name in DATASETS:
            records = get_prompts(self.name, self.split)
        elif Path(self.name).is_file():
            records = load_prompts(self.name, column=self.column)
        else:
            raise FtauditError(f"unknown dataset '{self.name}'; known: {', '.join(sorted(DATASETS))} (or give a file path)")
        if self.exclude:
            excluded = set(self.exclude)
            records = [r for r in records if r.id not in excluded]
        return subsample(records, self.limit, self.offset)

    @property
    def label(self) -> str:
        name = self.name if self.name in DATASETS else Path(self.name).stem
        return f"{name}:{self.role}" if self.role else name


FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".txt")


def parse_eval_set(text: str, kind: str | None = None) -> EvalSet:
    """``NAME[:SPLIT][@N]`` e.g. ``advbench@50`` or ``harmbench:eval@40``, or a prompt file; N is a positive
    whole number. An unknown name, a missing file or a bad limit or split fails here, before any work."""
    name, at, limit = text.partition("@")
    base, _, split = name.partition(":")
    if base in DATASETS:
        name = base
        if split and split not in ("train", "eval", "all"):
            raise FtauditError(f"unknown split '{split}' in '{text}'; use train, eval or all")
    elif Path(name).is_file():
        split = ""
    elif Path(name).suffix.lower() in FILE_SUFFIXES or "/" in name:
        raise FtauditError(f"no such file: {name}; give an existing prompt file or a dataset name "
                           "(see `ftaudit datasets list`)")
    else:
        raise FtauditError(f"unknown dataset '{base}'; known: {', '.join(sorted(DATASETS))} (or give a file path)")
    if at and not (limit.isdigit() and int(limit) > 0):
        raise FtauditError(f"bad limit '@{limit}' in '{text}': write NAME[:SPLIT][@N] with N a positive whole number, "
                           "e.g. advbench@50")
    if kind is None:
        kind = DATASETS[name].kind if name in DATASETS else "harmful"
    return EvalSet(name, kind, split or "eval", int(limit) if at else None)


def subsample(records: list[PromptRecord], limit: int | None, offset: int = 0) -> list[PromptRecord]:
    """A stable pseudo-random subset: the ``limit`` records whose id hashes lowest (mixes categories), after skipping
    the ``offset`` lowest (so ``offset=N`` never overlaps the subset ``limit=N``)."""
    if not offset and (not limit or limit >= len(records)):
        return records
    ordered = sorted(records, key=lambda r: hashlib.sha256(r.id.encode()).hexdigest())[offset:]
    return ordered[:limit] if limit else ordered


JUDGE_CHUNK = 64  # judgments are committed per chunk, so a crash loses at most one chunk


def judge_pending(store: Store, keys: list[str], judge_names: list[str], judge_options: dict | None = None,
                  evaluation: tuple[str, str, str] | None = None) -> None:
    """Run each judge on the generations it has not judged yet (keyed by judge name + version), and record the
    version ``evaluation`` (model, dataset, split) reports: a different version replaces it, never pools with it."""
    rows = store.existing_generations(keys)
    for name in judge_names:
        judge = shared_judge(name, **(judge_options or {}))
        done = store.judged_keys(judge.name, judge.version)
        todo = [k for k in keys if k not in done and k in rows]
        client = getattr(judge, "client", None)  # an API judge (a ChatClient) counts its answers and retries
        client = client if hasattr(client, "retries") else None
        for i in range(0, len(todo), JUDGE_CHUNK):
            chunk = todo[i:i + JUDGE_CHUNK]
            calls = (client.requests, client.retries) if client else None
            results = judge_responses(judge, [rows[k]["prompt"] for k in chunk], [rows[k]["response"] for k in chunk])
            store.add_judgments([{"gen_ref": k, "judge": j.judge, "judge_version": j.judge_version,
                                  "refused": None if j.refused is None else int(j.refused), "score": j.score,
                                  "label": j.label, "details": j.details} for k, j in zip(chunk, results)])
            if client and evaluation:
                store.add_judge_calls(*evaluation, judge.name, judge.version, client.requests - calls[0],
                                      client.retries - calls[1])
        if evaluation and (old := store.set_eval_judge(*evaluation, judge.name, judge.version)):
            say(f"{evaluation[0]} on {evaluation[1]}: judge {judge.name} is now version {judge.version}; it replaces {old} in "
                "the results (the old judgments stay cached)", "yellow")


def harm_sets_only(judges: list[str], kind: str) -> list[str]:
    """The judges that read a set of this kind: a judge marked ``harmful_sets_only`` (an LLM harm judge on local
    weights, seconds a reply) skips benign sets, whose harmfulness nobody reads (their metric is over-refusal)."""
    from .judges import JUDGES

    return [j for j in judges if not (kind == "benign" and getattr(JUDGES.get(j), "harmful_sets_only", False))]


def eval_generation_config(model_location: str, base: GenerationConfig) -> GenerationConfig:
    """Apply the evaluation-time system prompt/template an attack recorded (identity shift), as the study did."""
    path = Path(resolve_model_location(model_location))
    meta = read_marker(path) if path.is_dir() else None
    if meta and meta.get("eval_system_prompt"):
        return replace(base, system_prompt=meta["eval_system_prompt"],
                       prompt_template=meta.get("eval_prompt_template", "{prompt}"))
    return base


def _say_unanswered(store: Store, keys: list[str], what: str) -> None:
    responses = [r["response"] for r in store.existing_generations(keys).values()]
    skipped, empty = sum(r is None for r in responses), sum(r is not None and not r.strip() for r in responses)
    if skipped or empty:
        say(f"{what}: {skipped} of {len(keys)} prompts exceed the model's context and were skipped "
            f"(prompt_too_long_rate), {empty} responses were empty (empty_response_rate); neither counts as refusal or "
            "compliance", "yellow")


def evaluate_model(store: Store, model_name: str, attack: str, model_location: str, eval_sets: list[EvalSet],
                   cfg: GenerationConfig, judges: list[str], judge_options: dict | None = None):
    """Generate and judge ``model_location`` on every eval set; everything lands in ``store``.

    Returns the model it loaded for generation when that model is exactly what ``load_model(model_location)`` gives
    (no generation dtype converted it), so a capability stage can score the same weights without loading them
    again; otherwise None."""
    cfg = eval_generation_config(model_location, cfg)
    loaded = None
    for es in eval_sets:
        prompts = es.prompts()
        if not prompts:
            if es.exclude:
                raise FtauditError(f"every '{es.split}' prompt of '{es.name}' was left out as a near-duplicate of training "
                                   "data you supplied (held_out.json lists the files); evaluate on another set")
            raise FtauditError(f"dataset '{es.name}' has no '{es.split}' prompts")
        keys, loaded = cached_generate(store, model_location, model_name, attack, es.label, es.split, prompts, cfg, loaded)
        if store.set_evaluation(model_name, attack, es.label, es.kind, es.split, keys):
            say(f"{model_name} on {es.label}:{es.split}: the prompt selection, generation settings or weights changed; "
                "this evaluation replaces the earlier one (its generations stay cached)", "yellow")
        judge_pending(store, keys, harm_sets_only(judges, es.kind), judge_options, (model_name, es.label, es.split))
        _say_unanswered(store, keys, f"{model_name} on {es.label}:{es.split}")
    say(f"evaluated {model_name} on {', '.join(e.label for e in eval_sets)}", "green")
    return loaded if cfg.dtype is None else None


def eval_sets_from(args: list[str], benign: list[str], column: str | None = None) -> list[EvalSet]:
    """Parse ``--dataset``/``--benign`` values; prompt files are read now, so a malformed one fails before any work."""
    sets = [parse_eval_set(a) for a in args] + [replace(parse_eval_set(b), kind="benign") for b in benign]
    sets = [replace(s, column=column) for s in sets]
    for s in sets:
        if s.name not in DATASETS and not s.prompts():
            raise FtauditError(f"{s.name} holds no prompts")
    return sets
