"""Judge interface and registry (in the manner of lm-evaluation-harness registries)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import FtauditError


@dataclass
class Judgment:
    judge: str
    judge_version: str
    refused: bool | None = None  # refusal judges
    score: float | None = None  # harm judges
    label: str = ""
    details: dict = field(default_factory=dict)


class Judge:
    """Subclass, set ``name``/``version``/``needs``, implement :meth:`judge`."""

    name = "base"
    version = "0"
    needs = "offline"
    description = ""
    measures = "refusal"  # "refusal" (sets ``refused``) or "harm" (sets ``score``)
    trained_on: tuple[str, ...] = ()  # label sets (data.labelled.LABEL_SETS) it learned from: never validated on

    def __init__(self, **_options):
        """Judges take keyword options (client, model, policy, ...) and ignore those they do not use."""

    def judge(self, prompts: list[str], responses: list[str]) -> list[Judgment]:
        raise NotImplementedError


def judge_responses(judge: Judge, prompts: list[str], responses: list[str | None]) -> list[Judgment]:
    """Judge the answered responses; an empty response (label ``empty``) or a missing one (``prompt_too_long``:
    not generated) is its own outcome with neither ``refused`` nor ``score``, and never reaches the judge."""
    answered = [i for i, r in enumerate(responses) if r is not None and r.strip()]
    got = judge.judge([prompts[i] for i in answered], [responses[i] for i in answered]) if answered else []
    out = {i: j for i, j in zip(answered, got)}
    return [out.get(i) or Judgment(judge.name, judge.version, label="prompt_too_long" if r is None else "empty")
            for i, r in enumerate(responses)]


JUDGES: dict[str, type[Judge]] = {}


def register_judge(name: str):
    def wrap(cls):
        cls.name = name
        JUDGES[name] = cls
        return cls
    return wrap


def check_judges(names: list[str], options: dict | None = None) -> list[str]:
    """Fail on an unknown judge name, or an API judge whose ``options`` (endpoint, policy, template; else the
    environment) are missing or wrong, before any model is loaded or any prompt generated."""
    for name in names:
        if name not in JUDGES:
            raise FtauditError(f"unknown judge '{name}'; known: {', '.join(sorted(JUDGES))}")
        if options is not None and JUDGES[name].needs == "api":  # cheap to build (no request): checks endpoint,
            shared_judge(name, **options)  # policy and template options now; the evaluation reuses this instance
    return names


def get_judge(name: str, **kwargs) -> Judge:
    check_judges([name])
    return JUDGES[name](**kwargs)


_SHARED: dict[tuple, Judge] = {}  # judges hold models or clients: build each once per process


def shared_judge(name: str, **options) -> Judge:
    """The process's one instance of judge ``name`` with ``options`` (evaluation and validation share it, so a
    judge's model is loaded once)."""
    key = (name, repr(sorted(options.items())))
    if key not in _SHARED:
        _SHARED[key] = get_judge(name, **options)
    return _SHARED[key]
