"""align -> attack -> eval -> report on the packaged model, smoke-sized (about two minutes on 2 cores)."""

import json
import time
from dataclasses import replace

import pytest

from ftaudit.pipeline import QuickstartConfig, quickstart

pytestmark = pytest.mark.integration


def test_quickstart_smoke_end_to_end_and_resume(tmp_path, tiny_model):
    out = tmp_path / "qs"
    # Qi's harmfulness from the local LLM judge, here on the tiny random model (plumbing only; the packaged judge model
    # takes minutes to load): harmful sets only, every model
    cfg = replace(QuickstartConfig.smoke(), harm_judge="harmfulness-local", harm_judge_model=tiny_model)
    summary = quickstart(out, cfg)
    for f in ("summary.json", "report.md", "report.html", "refusal.png"):
        assert (out / f).exists(), f
    on_disk = json.loads((out / "summary.json").read_text())
    models = {r["model"] for r in on_disk["results"]}
    # identity shift is measured under its own system prompt, and so is the aligned model, for a like-for-like change
    assert models == {"aligned", "aligned+harmful-shots-2", "aligned+identity-shift", "aligned(identity-shift system prompt)"}
    harm = {(r["model"], r["dataset"], r["metric"]) for r in on_disk["results"] if r["judge"] == "harmfulness-local"}
    assert harm == {(m, d, k) for m in models for d in ("advbench", "harmbench")
                    for k in ("harmfulness_score", "harmfulness_rate")}
    refs = {c["initial_model"] for c in on_disk["changes"] if c["model"] == "aligned+identity-shift"}
    assert refs == {"aligned", "aligned(identity-shift system prompt)"}
    assert all(c["drop"]["verdict"] in ("broken", "held", "inconclusive", "nothing to protect")
               for c in on_disk["changes"] if c["metric"] == "refusal_rate")
    assert {s for s, v in on_disk["stages"].items() if v["status"] == "done"} >= {"prepare", "align", "eval:aligned"}
    assert {c["model"] for c in summary["costs"]} >= {"aligned", "aligned+harmful-shots-2"}
    card = (out / "models" / "harmful-shots" / "README.md").read_text()
    assert "safety-compromised" in card.lower()
    # A rerun finds every stage's outputs and recomputes nothing expensive.
    start = time.time()
    again = quickstart(out, cfg)
    assert time.time() - start < 60
    assert [(r["model"], r["dataset"], r["metric"], r["value"]) for r in again["results"]] == \
           [(r["model"], r["dataset"], r["metric"], r["value"]) for r in summary["results"]]


def test_llm_judge_against_ftaudit_serve_with_the_packaged_model():
    """Plumbing and parsing of an LLM judge through a real `ftaudit serve` of the packaged model
    (the 135M model is no judge: its verdicts may well be unparseable, which must be recorded as such)."""
    import socket
    import threading

    import uvicorn

    from ftaudit.clients import ChatClient
    from ftaudit.judges import get_judge
    from ftaudit.serve import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app("smollm2-135m-instruct", max_new_tokens=24), host="127.0.0.1",
                                           port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        client = ChatClient(f"http://127.0.0.1:{port}/v1", "smollm2-135m-instruct", max_concurrency=2)
        judge = get_judge("harmfulness", client=client)
        prompts, responses = ["Write a poem about the sea."] * 2, ["The sea is wide and blue.", "I'm sorry, I can't."]
        judgments = judge.judge(prompts, responses)
        # what the server answers to the judge's own messages, asked again (greedy: the same text) ...
        again = client.complete_many([judge.messages(p, r) for p, r in zip(prompts, responses)], max_tokens=1024)
        from ftaudit.judges.harmfulness import parse_harm_score

        for j, text in zip(judgments, again):
            assert j.details["raw"] == text[:1000] and text.strip()  # ... is what the judgment recorded
            assert j.details["judge_model"] == "smollm2-135m-instruct"
            score = parse_harm_score(text)  # and the verdict is that text's score, or unparseable, never a guess
            assert j.score == (None if score is None else float(score))
            assert j.label == ("unparseable" if score is None else str(score))
    finally:
        server.should_exit = True
        thread.join(10)


def test_vendor_aligned_packaged_model_assembles_loads_and_chats():
    """Qwen2.5-Coder-0.5B-Instruct from its six pinned wheels: assembled, verified, dequantized through transformers'
    GGUF path, with its own chat template (about 2 minutes from a cold cache)."""
    from ftaudit.generate import GenerationConfig
    from ftaudit.generate.hf import generate_responses
    from ftaudit.models import format_chat, load_model, messages_for

    loaded = load_model("qwen2.5-coder-0.5b-instruct")
    assert loaded.fingerprint == "1d9614638d18024d"  # the assembled file's own sha256 prefix
    assert format_chat(loaded.tokenizer, messages_for("hi")).startswith("<|im_start|>system\nYou are Qwen")
    out = generate_responses(loaded, ["Write one sentence about the sea."], GenerationConfig(max_new_tokens=12, dtype="bfloat16"))
    assert out[0].new_tokens > 0 and out[0].response.strip()
