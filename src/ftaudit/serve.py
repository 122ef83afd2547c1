"""``ftaudit serve``: an OpenAI-compatible ``/v1/chat/completions`` server over the HF generation backend.

It lets a local model (with any adapter applied) act as an LLM judge or be probed by hand. Binds to
loopback by default. Requests are served one at a time (a lock around generation), which is what a
single CPU or GPU model can do anyway.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable

from pydantic import BaseModel

from .errors import FtauditError
from .generate import GenerationConfig, HFBackend
from .models import load_model


# Module level: FastAPI resolves these annotations by name (this module uses postponed annotations).
class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[Message]
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int | None = None


def create_app(model: str, max_new_tokens: int = 512):
    """A FastAPI app serving ``model`` (a short name, path, .gguf, hub id or adapter directory)."""
    from fastapi import FastAPI, HTTPException

    loaded = load_model(model)
    backend = HFBackend(loaded)
    lock = threading.Lock()
    app = FastAPI(title="ftaudit serve", version="1")

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "ftaudit"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        if not req.messages:
            raise HTTPException(400, "messages must not be empty")
        cfg = GenerationConfig(max_new_tokens=min(req.max_tokens or max_new_tokens, max_new_tokens),
                               temperature=req.temperature, top_p=req.top_p, batch_size=1)
        conv = [m.model_dump() for m in req.messages]
        with lock:
            [res] = backend.generate([conv], cfg, description="serving")
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
                "model": req.model or model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": res.response},
                             "finish_reason": "length" if res.new_tokens >= cfg.max_new_tokens else "stop"}],
                "usage": {"completion_tokens": res.new_tokens}}

    return app


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, max_new_tokens: int = 512,
          on_ready: Callable[[], None] | None = None) -> None:
    """Bind ``host:port`` first (a port in use fails before the model loads), then load ``model`` and serve until
    Ctrl-C. ``on_ready`` runs once the model is loaded, just before requests are served."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FtauditError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); the port is in use or the address "
                           "is not this machine's: pick another with --port or --host") from None
    app = create_app(model, max_new_tokens)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    if on_ready:
        on_ready()
    server.run(sockets=[sock])
