"""Load chat records and prompts from JSONL, CSV, JSON or the Hugging Face hub.

Every malformed input is a one-line :class:`FtauditError` naming the file and row.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import FtauditError
from ..sources import is_hub_id
from .records import ROLES, ChatRecord, PromptRecord


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark (spreadsheet exports) is not part of the data
    except UnicodeDecodeError as exc:
        raise FtauditError(f"{path}: not valid UTF-8 (byte {exc.start}: {exc.reason}); save the file as UTF-8") from None


def _check_unicode(row, where: str):
    """JSON may spell a lone surrogate (``"\\ud800"``), which is no character: refuse it here, not deep in a tokenizer."""
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FtauditError(f"{where}: text holds a lone surrogate {exc.object[exc.start:exc.end]!r}, which is not valid "
                           "Unicode; fix that row") from None
    return row


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    rows = []
    for lineno, line in enumerate(_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FtauditError(f"{path}:{lineno}: malformed JSON ({exc.msg}); fix or remove that row") from None
        if not isinstance(row, dict):
            raise FtauditError(f"{path}:{lineno}: expected a JSON object per line")
        rows.append((lineno, _check_unicode(row, f"{path}:{lineno}")))
    return rows


def _check_messages(messages, where: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise FtauditError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise FtauditError(f"{where}: each message needs role in {ROLES} and a string content; got {str(m)[:80]}")
    roles = [m["role"] for m in messages]
    turns = roles[1:] if roles[0] == "system" else roles
    for i, role in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            position = i + 1 + (roles[0] == "system")
            raise FtauditError(f"{where}: message {position} is '{role}', expected '{expected}': a chat is an optional "
                               "system prompt first, then user and assistant turns alternating, starting with the user")
    if roles[-1] != "assistant":
        raise FtauditError(f"{where}: the last message must be the assistant's answer to train on")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _record_id(row: dict, default: str) -> str:
    """The row's own id, whatever it is (0 included); the default only where it gives none (absent, null, empty)."""
    given = row.get("id")
    return default if given is None or given == "" else str(given)


# ShareGPT's speaker names (any case) -> chat roles
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "bard": "assistant", "bing": "assistant", "model": "assistant", "system": "system"}
FORMATS = ("messages", "conversations", "prompt")  # the fields that name a row's format


def _content(value, where: str):
    """A message's text: a string, or OpenAI's list of content parts (their text joined); anything else is kept
    as it is for :func:`_check_messages` to refuse."""
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        if any(p.get("type") not in (None, "text") for p in value):
            raise FtauditError(f"{where}: a message holds a non-text part ({sorted({str(p.get('type')) for p in value})}); "
                               "only text is screened and trained on")
        return "".join(str(p.get("text", "")) for p in value)
    return value


def chat_messages(row: dict, where: str) -> list[dict]:
    """One training row's chat, in any format a fine-tuning service receives: OpenAI's chat format (``messages``,
    a system prompt included, text content parts joined), OpenAI's older ``prompt``/``completion`` pairs, ShareGPT
    ``conversations`` (``from``/``value``, a top-level ``system`` field first), or ``prompt``/``response`` pairs;
    checked as a chat (see :func:`_check_messages`). A row in two formats at once, or with both a completion and a
    response, is refused rather than read one way: what the screen reads must be what training reads."""
    given = [f for f in FORMATS if f in row]
    if len(given) > 1:
        raise FtauditError(f"{where}: the row is in two formats at once ({', '.join(given)}); give one")
    if "messages" in row:
        messages = row["messages"]
        if isinstance(messages, list):
            messages = [{**m, "content": _content(m.get("content"), where)} if isinstance(m, dict) else m
                        for m in messages]
    elif "conversations" in row:
        turns = row["conversations"]
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise FtauditError(f"{where}: 'conversations' must be a list of {{from, value}} objects")
        unknown = sorted({str(t.get("from")) for t in turns if str(t.get("from")).lower() not in SHAREGPT_ROLES})
        if unknown:
            raise FtauditError(f"{where}: unknown speaker {unknown[0]!r} in 'conversations'; use human, gpt or system")
        messages = [{"role": SHAREGPT_ROLES[str(t["from"]).lower()], "content": t.get("value")} for t in turns]
        if "system" in row:
            messages = [{"role": "system", "content": row["system"]}, *messages]
    elif "prompt" in row and ("completion" in row) != ("response" in row):
        messages = [{"role": "user", "content": row["prompt"]},
                    {"role": "assistant", "content": row["completion"] if "completion" in row else row["response"]}]
    elif "prompt" in row and "completion" in row:
        raise FtauditError(f"{where}: the row has both 'completion' and 'response'; give one")
    else:
        raise FtauditError(f"{where}: row has none of 'messages', 'conversations', or 'prompt' with 'completion' or "
                           "'response'")
    return _check_messages(messages, where)


def _lines(path: Path):
    """(line number, text) of a file read as bytes and split at ``\\n`` only, as the JSONL readers of fine-tuning
    services split it (a bare ``\\r`` inside a row does not end it); a line that is not UTF-8 is (line, FtauditError)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark (spreadsheet exports) is not data
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, FtauditError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start} of the line: "
                                           f"{exc.reason}); save the file as UTF-8")


def _rows(path: Path):
    """(line number, row) of a JSONL or CSV training file, read one line at a time (a 100k-row file is never held
    in memory); a malformed row is (line, FtauditError) for the caller to raise or report."""
    if path.suffix.lower() == ".csv":
        yield from _csv_rows(path)
        return
    for lineno, line in _lines(path):
        if isinstance(line, FtauditError):
            yield lineno, line
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, FtauditError(f"{path}:{lineno}: malformed JSON ({exc.msg}); fix or remove that row")
            continue
        if not isinstance(row, dict):
            yield lineno, FtauditError(f"{path}:{lineno}: expected a JSON object per line")
            continue
        yield lineno, row


def _csv_rows(path: Path):
    bad: list[FtauditError] = []

    def text():
        for _, line in _lines(path):
            if isinstance(line, FtauditError):
                bad.append(line)  # a CSV that is not UTF-8 cannot be split into rows reliably: the whole file fails
                return
            yield line
    reader = csv.DictReader(text())
    columns = set(reader.fieldnames or [])
    if bad:
        raise bad[0]
    if not ("prompt" in columns and columns & {"response", "completion"}):
        raise FtauditError(f"{path}: a CSV training file needs 'prompt' and 'response' columns (or 'prompt' "
                           f"and 'completion'); it has {reader.fieldnames}")
    start = reader.line_num + 1
    for row in reader:
        if bad:
            raise bad[0]
        yield start, row  # the line the row starts on, quoted fields spanning lines included
        start = reader.line_num + 1
    if bad:
        raise bad[0]


def iter_chat_records(path: str | Path, on_error=None):
    """Stream a training file (chat JSONL in any of :func:`chat_messages`' formats, or CSV) as ChatRecords, one row
    at a time. A bad row raises FtauditError naming its line, or, given ``on_error(line, message)``, is reported there
    and skipped while the rest is read."""
    path = Path(path)
    if not path.is_file():
        raise FtauditError(f"no such file: {path}")
    ordinal = 0
    for lineno, row in _rows(path):
        ordinal += 1
        where = f"{path}:{lineno}"
        try:
            if isinstance(row, FtauditError):
                raise row
            row = _check_unicode(row, where)
            # an id the file does not give is the example's number, so one file as JSONL or as CSV has the same ids
            record = ChatRecord(chat_messages(row, where), _record_id(row, f"{path.stem}-{ordinal}"),
                                str(row.get("category", "")), str(row.get("split", "")))
        except FtauditError as exc:
            if on_error is None:
                raise
            on_error(lineno, str(exc))
            continue
        yield record


def load_chat_records(path: str | Path) -> list[ChatRecord]:
    """Every row of a training file (see :func:`iter_chat_records`); a bad row is an error naming its line."""
    return list(iter_chat_records(path))


def save_chat_records(records: list[ChatRecord], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({"id": r.id, "category": r.category, "messages": r.messages, **({"meta": r.meta} if r.meta else {})}) + "\n")
    return path


def _rows_from_file(path: Path, column: str | None) -> list[tuple[str, dict]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [(f"{path}:{n}", row) for n, row in _read_jsonl(path)]
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(_text(path), newline=""))
        if column and column not in (reader.fieldnames or []):
            raise FtauditError(f"{path}: no column '{column}'; columns are {reader.fieldnames}")
        return [(f"{path}:{n + 2}", row) for n, row in enumerate(reader)]
    if suffix == ".json":
        try:
            data = _check_unicode(json.loads(_text(path)), str(path))
        except json.JSONDecodeError as exc:
            raise FtauditError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list):
            raise FtauditError(f"{path}: expected a JSON list of objects (or an object holding one)")
        return [(f"{path}[{n}]", row if isinstance(row, dict) else {"prompt": row}) for n, row in enumerate(data)]
    raise FtauditError(f"{path}: unsupported file type '{suffix}'; use .jsonl, .csv or .json")


def load_prompts(location: str | Path, column: str | None = None, id_column: str | None = None,
                 category_column: str | None = None, split: str | None = None) -> list[PromptRecord]:
    """Prompts from a local file (JSONL/CSV/JSON) or a hub dataset id (``hf:ORG/NAME``)."""
    location = str(location)
    path = Path(location).expanduser()
    if path.is_file():
        rows = _rows_from_file(path, column)
        source = path.name
    elif path.is_dir() or location.startswith("hf:") or is_hub_id(location):
        rows, source = rows_from_hub(location.removeprefix("hf:"), split or "train"), location
    else:
        raise FtauditError(f"no such file or dataset: {location}; give a .jsonl/.csv/.json path, a hub id or a name from `ftaudit datasets list`")
    col = column or next((c for c in ("prompt", "goal", "behavior", "Behavior", "instruction", "question", "forbidden_prompt")
                          if rows and c in rows[0][1]), None)
    if col is None:
        raise FtauditError(f"{location}: cannot tell which column holds the prompt; pass --column")
    out = []
    for n, (where, row) in enumerate(rows):
        text = row.get(col)
        if not isinstance(text, str) or not text.strip():
            raise FtauditError(f"{where}: empty or missing '{col}'")
        out.append(PromptRecord(text.strip(), str(row.get(id_column or "id", f"{Path(source).stem}-{n:04d}")),
                                str(row.get(category_column or "category", "") or ""), source))
    return out


def rows_from_hub(dataset_id: str, split: str) -> list[tuple[str, dict]]:
    """Rows of a hub dataset ``ORG/NAME[@REVISION]`` (or a local directory in a hub dataset's layout) via
    ``datasets.load_dataset``; see :func:`hub_dataset` for the resolved commit."""
    return hub_dataset(dataset_id, split)[0]


def hub_dataset(dataset_id: str, split: str) -> tuple[list[tuple[str, dict]], str | None]:
    """(rows, resolved commit). A hub id is snapshot-downloaded at its revision and read from that snapshot, so the
    rows and the commit recorded with them are the same data; a local directory has no commit (None)."""
    import datasets

    from ..sources import fetch_hub, hub_commit

    local = Path(dataset_id).expanduser()
    commit = None
    try:
        if not local.is_dir():
            local = fetch_hub(dataset_id, repo_type="dataset")
            commit = hub_commit(local)
        ds = datasets.load_dataset(str(local), split=split)
    except FtauditError:
        raise FtauditError(f"could not load hub dataset '{dataset_id}'; check the id and revision, network or HF_TOKEN, "
                           "or pass a local file") from None
    except Exception as exc:  # the hub raises many types; all mean "not reachable or not found"
        raise FtauditError(f"could not load hub dataset '{dataset_id}' ({type(exc).__name__}); "
                           "check the id, network or HF_TOKEN, or pass a local file") from None
    return [(f"{dataset_id}[{n}]", dict(row)) for n, row in enumerate(ds)], commit
