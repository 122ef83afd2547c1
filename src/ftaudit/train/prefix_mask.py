"""Answers that open with text the model reads but is never trained on (Qi et al. 2024's safety-recovery examples).

A recovery example is a harmful request, the first few tokens of a compliant answer, then a refusal; the loss covers
the refusal only, so the model learns to recover from a harmful start without learning to write one. TRL's
prompt-completion format trains the whole final assistant turn and has no per-example mask inside a turn (a prompt
ending in an assistant message is closed and a new turn opened, which is not the paper's example). So a dataset with
such records is tokenized here, the way TRL's own conversational prompt-completion path does it (the chat template
with and without the generation prompt, the completion starting where the two diverge), and the opening is then
taken out of the completion mask. TRL accepts the tokenized rows as they are (``input_ids`` + ``completion_mask``)
and builds the labels from the mask; a test checks these rows equal TRL's for records without an opening.
"""

from __future__ import annotations

from ..data import ChatRecord
from ..errors import FtauditError

UNTRAINED_PREFIX = "untrained_prefix"  # ChatRecord.meta key: the final answer opens with this text, never trained on


def untrained_prefix(record: ChatRecord) -> str:
    """The opening of ``record``'s final answer that is context, not target ('' for an ordinary record)."""
    return (record.meta or {}).get(UNTRAINED_PREFIX) or ""


def tokenized_rows(records: list[ChatRecord], tokenizer) -> list[dict]:
    """``input_ids`` and ``completion_mask`` per record, as TRL would tokenize them, with each record's untrained
    opening masked. The opening ends where the template rendered up to it (the answer turn left open) and the whole
    conversation diverge, so a token the opening shares with what follows is trained, never the reverse."""
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
            opened = ids(r.messages[:-1] + [{"role": "assistant", "content": prefix}], continue_final_message=True)
            start = max(start, common_prefix_length(opened, full))
        rows.append({"input_ids": full, "completion_mask": [0] * start + [1] * (len(full) - start)})
    return rows
