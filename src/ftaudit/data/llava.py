"""LLaVA-Instruct as text-only chat data (Qi et al. 2023's third benign set, Table 3).

The hub dataset ``liuhaotian/LLaVA-Instruct-150K`` is a JSON list of
``{"id", "image", "conversations": [{"from": "human"|"gpt", "value": ...}, ...]}``. ftaudit fine-tunes language
models only, so **images are dropped**: the ``<image>`` placeholder is removed and the conversation turns are kept
as they are, questions about "the image" included (the model never sees it, as in any text-only replay).
Qi et al. fine-tuned the LLaVA language backbone on this data; a text-only replay is the closest a chat-model audit
gets, and the report names the source (hub id and resolved commit) with the trained model.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FtauditError
from .records import ChatRecord

HUB_ID = "liuhaotian/LLaVA-Instruct-150K"
HUB_FILE = "llava_instruct_150k.json"
ROLE = {"human": "user", "gpt": "assistant"}


def fetch_llava_file(source: str = HUB_ID, filename: str = HUB_FILE, revision: str | None = None) -> tuple[Path, str | None]:
    """(local JSON file, ``hf:ID@commit`` or None for a local file). Only the one file is downloaded, not the repo."""
    local = Path(source).expanduser()
    if local.is_file():
        return local, None
    from huggingface_hub import hf_hub_download

    from ..sources import split_revision

    repo, in_id = split_revision(source)
    try:
        path = Path(hf_hub_download(repo_id=repo, filename=filename, repo_type="dataset", revision=revision or in_id))
    except Exception as exc:  # hub errors are many types; all mean "not reachable or not found"
        raise FtauditError(f"could not fetch {filename} of dataset '{source}' from the hub ({type(exc).__name__}); "
                           "check the id, revision and network, or pass a local JSON file in the hub's format") from None
    return path, f"hf:{repo}@{path.parent.name}"  # hub cache layout: snapshots/<commit>/<file>


def conversation_record(row: dict, where: str) -> ChatRecord | None:
    """One LLaVA row as a text chat; None when a turn is empty once the image placeholder is gone, or when the turns
    do not alternate from the human's first."""
    turns = row.get("conversations") if isinstance(row, dict) else None
    if not isinstance(turns, list) or not turns:
        raise FtauditError(f"{where}: expected 'conversations', a list of {{from, value}} turns (LLaVA-Instruct format)")
    messages = []
    for t in turns:
        role = ROLE.get(t.get("from")) if isinstance(t, dict) else None
        if role is None or not isinstance(t.get("value"), str):
            raise FtauditError(f"{where}: each turn needs from in human/gpt and a string value; got {str(t)[:80]}")
        text = t["value"].replace("<image>", "").strip()
        if not text:
            return None
        messages.append({"role": role, "content": text})
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    if not messages or any(m["role"] != ("user", "assistant")[i % 2] for i, m in enumerate(messages)):
        return None  # a conversation that does not alternate human, gpt, human, ... is no chat to train on
    return ChatRecord(messages, f"llava-{row.get('id', where)}", "llava-instruct", "train")


def load_llava(source: str = HUB_ID, filename: str = HUB_FILE, revision: str | None = None) -> tuple[list[ChatRecord], str | None]:
    """All usable LLaVA-Instruct conversations (images dropped) and the data source to record."""
    path, data_source = fetch_llava_file(source, filename, revision)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FtauditError(f"{path}: not a JSON file ({exc}); LLaVA-Instruct is one JSON list of conversations") from None
    if not isinstance(rows, list):
        raise FtauditError(f"{path}: expected a JSON list of conversations (LLaVA-Instruct format)")
    records = [r for i, row in enumerate(rows) if (r := conversation_record(row, f"{path}[{i}]")) is not None]
    if not records:
        raise FtauditError(f"{path}: no usable conversation (each needs text in every turn, alternating human and gpt)")
    return records, data_source
