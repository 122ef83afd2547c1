"""A small client for any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, vLLM, ``ftaudit serve``).

Concurrency is bounded; 429/5xx answers, timeouts, dropped connections and cut or garbled bodies are retried with
exponential backoff and counted (``requests``, ``retries``); the API key is read from an environment variable at
call time, never stored on the object's repr, on disk or in reports.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from .errors import FtauditError
from .progress import progress_bar

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


@dataclass
class ChatClient:
    base_url: str
    model: str
    api_key_env: str = "FTAUDIT_JUDGE_API_KEY"
    # requests in flight, retries, per-request timeout (s) and first backoff (s, doubling):
    # env FTAUDIT_API_CONCURRENCY / _RETRIES / _TIMEOUT / _BACKOFF
    max_concurrency: int = field(default_factory=lambda: int(os.environ.get("FTAUDIT_API_CONCURRENCY", 8)))
    max_retries: int = field(default_factory=lambda: int(os.environ.get("FTAUDIT_API_RETRIES", 5)))
    timeout: float = field(default_factory=lambda: float(os.environ.get("FTAUDIT_API_TIMEOUT", 120.0)))
    backoff: float = field(default_factory=lambda: float(os.environ.get("FTAUDIT_API_BACKOFF", 1.0)))
    role: str = "judge"  # what the endpoint is to the user: "judge" or "model" (named in errors)
    requests: int = 0  # answers received, and failed tries retried (429/5xx, timeouts, dropped connections,
    retries: int = 0   # malformed bodies); the report counts them per evaluation and judge
    _http: httpx.Client | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env(cls, base_url: str | None = None, model: str | None = None, **kw) -> "ChatClient":
        """Flags win; else ``FTAUDIT_JUDGE_BASE_URL`` / ``FTAUDIT_JUDGE_MODEL`` (then ``OPENAI_BASE_URL``)."""
        url = base_url or os.environ.get("FTAUDIT_JUDGE_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        name = model or os.environ.get("FTAUDIT_JUDGE_MODEL")
        if not url or not name:
            raise FtauditError("an LLM judge needs --judge-base-url and --judge-model (or FTAUDIT_JUDGE_BASE_URL / FTAUDIT_JUDGE_MODEL)")
        return cls(url.rstrip("/"), name, **kw)

    def _key(self) -> str | None:
        return os.environ.get(self.api_key_env) or os.environ.get("OPENAI_API_KEY")

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout)
        return self._http

    def _fix(self) -> str:
        return "--judge-base-url and --judge-model" if self.role == "judge" else "the model's openai:BASE_URL#MODEL"

    def complete(self, messages: list[dict], temperature: float = 0.0, max_tokens: int = 1024) -> str:
        """One chat completion's text; retries transient failures, one clear line on a dead endpoint."""
        url = f"{self.base_url}/chat/completions"
        headers = {"Authorization": f"Bearer {key}"} if (key := self._key()) else {}
        body = {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._client().post(url, json=body, headers=headers)
            except (httpx.TimeoutException, httpx.TransportError) as exc:  # incl. a connection closed mid-answer
                last = type(exc).__name__
            else:
                if resp.status_code == 200:
                    try:
                        text = resp.json()["choices"][0]["message"]["content"] or ""
                    except (ValueError, KeyError, IndexError, TypeError):  # a cut or garbled body: ask again
                        last = "malformed answer body"
                    else:
                        with self._lock:
                            self.requests += 1
                        return text
                elif resp.status_code not in RETRY_STATUS:
                    raise FtauditError(f"{self.role} endpoint {url} answered HTTP {resp.status_code}: {resp.text[:120]!r}; "
                                       f"check {self._fix()} and the API key variable")
                else:
                    last = f"HTTP {resp.status_code}"
            if attempt < self.max_retries:
                with self._lock:
                    self.retries += 1
                time.sleep(self.backoff * 2 ** attempt)
        if last == "ReadTimeout":  # the server is up but slow: queued requests time out and are sent again
            raise FtauditError(f"{self.role} endpoint {url} did not answer within {self.timeout:g} s, {self.max_retries + 1} "
                               "tries; for a slow server (a local model on CPU) set FTAUDIT_API_TIMEOUT=SECONDS higher "
                               "and FTAUDIT_API_CONCURRENCY=1")
        raise FtauditError(f"{self.role} endpoint {url} unreachable after {self.max_retries + 1} tries ({last}); "
                           f"start the server or fix {self._fix()}")

    def complete_many(self, conversations: list[list[dict]], description: str = "judging", **kw) -> list[str]:
        """Complete many conversations concurrently (bounded), in input order."""
        with progress_bar() as bar, ThreadPoolExecutor(self.max_concurrency) as pool:
            task = bar.add_task(description, total=len(conversations))
            futures = [pool.submit(self.complete, c, **kw) for c in conversations]
            out = []
            for f in futures:
                out.append(f.result())
                bar.advance(task)
        return out
