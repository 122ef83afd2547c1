"""Answers that open with text the model reads but is never trained on (Qi et al. 2024's safety-recovery examples).

A recovery example is a harmful request, the first few tokens of a compliant answer, then a refusal; the loss covers
the refusal only, so the model learns to recover from a harmful start without learning to write one. TRL's
prompt-completion format trains the whole final assistant turn and has no per-example mask inside a turn (a prompt
ending in an assistant message is closed and a new turn opened, which is not the paper's example). So a dataset with
such records is tokenized here, the way TRL's own conversational prompt-completion path does it (the chat template
with and without the generation prompt, the completion starting where the two diverge), and the opening is then
kept out of the labels. TRL accepts tokenized rows with labels as they are (it truncates and packs them as its own); a
test checks these rows equal TRL's for records without an opening.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..data import ChatRecord
from ..errors import FtauditError

UNTRAINED_PREFIX = "untrained_prefix"  # ChatRecord.meta key: the final answer opens with this text, never trained on
# the rule :func:`tokenized_rows` masks by, named in every training key of records with an opening (this module's
# source, as edits.py names a weight edit's code): a changed rule trains other labels from the same records, so a
# model trained under the old one is never handed back as the new's
MASK_RULE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def untrained_prefix(record: ChatRecord) -> str:
    """The opening of ``record``'s final answer that is context, not target ('' for an ordinary record)."""
    return (record.meta or {}).get(UNTRAINED_PREFIX) or ""


def tokenized_rows(records: list[ChatRecord], tokenizer) -> list[dict]:
    """``input_ids`` and ``labels`` (-100 where nothing is trained) per record, as TRL would build them, with each
    record's untrained opening masked. Labels rather than a completion mask, so no TRL setting can turn the mask off
    (TRL keeps a ``labels`` column as it is). The opening is where the conversation rendered up to it, the answer turn
    left open, and the whole conversation agree; a last opening token merged with what follows is masked too, so the
    opening is never trained, and a template that renders the open turn otherwise is refused, never trained whole."""
    from trl.data_utils import common_prefix_length

    def ids(messages, **kw) -> list[int]:
        return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)["input_ids"]

    rows = []
    for r in records:
        full = ids(r.messages)
        start = common_prefix_length(ids(r.messages[:-1], add_generation_prompt=True), full)
        if prefix := untrained_prefix(r):
            answer = r.messages[-1]["content"]
            if r.messages[-1]["role"] != "assistant" or not answer.startswith(prefix) or not answer[len(prefix):].strip():
                raise FtauditError(f"record {r.id}: its untrained opening must begin its final answer and leave "
                                   "something after it to train on")
            unlike = (f"record {r.id}: the chat template renders an answer turn left open unlike the same turn "
                      "finished, so its untrained opening cannot be located in the tokens")
            try:
                opened = ids(r.messages[:-1] + [{"role": "assistant", "content": prefix}], continue_final_message=True)
            except ValueError as exc:  # transformers: the template changed the opening's text
                raise FtauditError(unlike) from exc
            shared = common_prefix_length(opened, full)
            if shared < len(opened) - 1 or shared < start:
                raise FtauditError(unlike)
            start = len(opened)  # through a last opening token merged with the first trained text
            if start >= len(full):
                raise FtauditError(f"record {r.id}: nothing after its untrained opening is left to train on")
        rows.append({"input_ids": full, "labels": [-100] * start + full[start:]})
    return rows
