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

    def __init__(self, **_options):
        """Judges take keyword options (client, model, policy, ...) and ignore those they do not use."""

    def judge(self, prompts: list[str], responses: list[str]) -> list[Judgment]:
        raise NotImplementedError


JUDGES: dict[str, type[Judge]] = {}


def register_judge(name: str):
    def wrap(cls):
        cls.name = name
        JUDGES[name] = cls
        return cls
    return wrap


def get_judge(name: str, **kwargs) -> Judge:
    if name not in JUDGES:
        raise FtauditError(f"unknown judge '{name}'; known: {', '.join(sorted(JUDGES))}")
    return JUDGES[name](**kwargs)
