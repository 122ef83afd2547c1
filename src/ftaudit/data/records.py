"""The two record types everything else passes around."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field

ROLES = ("system", "user", "assistant")


def normalize_text(text: str) -> str:
    """Case- and punctuation-insensitive form used for split hashing and overlap checks."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode()).hexdigest()


@dataclass
class PromptRecord:
    """An evaluation (or attack-source) prompt."""

    prompt: str
    id: str
    category: str = ""
    source: str = ""
    split: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ChatRecord:
    """A training conversation; loss is taken on the final assistant turn."""

    messages: list[dict]
    id: str
    category: str = ""
    split: str = ""
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def user_prompt(self) -> str:
        return next(m["content"] for m in self.messages if m["role"] == "user")

    @property
    def last_user_prompt(self) -> str:
        """The request the final answer replies to ('' when there is no user turn)."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")
