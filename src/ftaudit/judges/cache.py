"""The persistent judgment cache: (judge, version, sha256(prompt, response)) -> a verdict's fields, shared by
`ftaudit judge` and the LLM judges on offline weights (a module of its own, importing nothing of the judges, so that
a judge can use it without an import circle)."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from ..wheels import cache_dir


class JudgmentCache:
    """(judge, version, sha256(prompt, response)) -> judgment fields, in the cache directory."""

    def __init__(self):
        self.db = sqlite3.connect(cache_dir() / "judgments.sqlite")
        self.db.execute("CREATE TABLE IF NOT EXISTS j(judge TEXT, version TEXT, key TEXT, fields TEXT, PRIMARY KEY(judge, version, key))")

    @staticmethod
    def key(prompt: str, response: str) -> str:
        return hashlib.sha256(json.dumps([prompt, response]).encode()).hexdigest()

    def get(self, judge: str, version: str, keys: list[str]) -> dict[str, dict]:
        out = {}
        for k in keys:
            row = self.db.execute("SELECT fields FROM j WHERE judge=? AND version=? AND key=?", (judge, version, k)).fetchone()
            if row:
                out[k] = json.loads(row[0])
        return out

    def put(self, judge: str, version: str, items: dict[str, dict]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO j VALUES (?,?,?,?)",
                                [(judge, version, k, json.dumps(v)) for k, v in items.items()])
