"""The base of the LLM judges that grade over any OpenAI-compatible chat API (see :mod:`ftaudit.clients`):
``harmfulness`` (:mod:`.harmfulness`), ``strongreject`` (:mod:`.strongreject`), ``refusal-3way`` (:mod:`.refusal_3way`).

An answer that cannot be parsed is recorded with ``label="unparseable"`` and no score: counted and
reported, never guessed.
"""

from __future__ import annotations

import hashlib

from .base import Judge, Judgment


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class LLMJudge(Judge):
    """Base: build one grading conversation per (prompt, response), send them concurrently, parse. Subclasses set
    their prompt texts before calling this ``__init__``, which names the judge version once."""

    needs = "api"
    template = ""
    system = ""

    def __init__(self, client=None, base_url: str | None = None, model: str | None = None, **_):
        from ..clients import ChatClient

        self.client = client or ChatClient.from_env(base_url, model)
        # the version names everything that changes a verdict: the rubric, the judge model and the prompt text (and
        # policy), so switching any of them re-asks instead of reusing cached verdicts
        # the endpoint too: one model name served by two endpoints (a local server and a vendor's API, or two
        # quantisations) is two judges
        endpoint = getattr(self.client, "base_url", "") or ""
        self.version = (f"{type(self).version}+{self.client.model}@{_hash(str(endpoint).rstrip('/'))[:8]}+"
                        f"{_hash(self.system + self.template + self.identity_text())}")

    def identity_text(self) -> str:
        """Anything besides the prompt texts that changes a verdict (the harmfulness judge's policy)."""
        return ""

    def messages(self, prompt: str, response: str) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": self.render(prompt, response)}]

    def render(self, prompt: str, response: str) -> str:
        return self.template.format(prompt=prompt, response=response)

    def parse(self, text: str) -> Judgment:
        raise NotImplementedError

    def judge(self, prompts: list[str], responses: list[str]) -> list[Judgment]:
        texts = self.client.complete_many([self.messages(p, r) for p, r in zip(prompts, responses)],
                                          description=f"{self.name} ({self.client.model})", max_tokens=1024)
        out = []
        for text in texts:
            j = self.parse(text)
            j.judge, j.judge_version = self.name, self.version
            j.details.update(judge_model=self.client.model, template_hash=_hash(self.system + self.template),
                             raw=text[:1000])
            out.append(j)
        return out
