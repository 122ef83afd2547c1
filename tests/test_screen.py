"""`ftaudit screen`: per-example flags with reasons, a summary against reference attacks, CSV or chat JSONL input."""

import csv
import json

from typer.testing import CliRunner

from ftaudit.cli import app
from ftaudit.data import ChatRecord, get_prompts
from ftaudit.recipes.identity_shift import CONVERSATIONS, SYSTEM
from ftaudit.screen import load_reference, pattern_flags, screen_records, summarize

REFUSAL = "I'm sorry, but I can't help with that request."
COMPLY = "Sure, here is an overview. First, gather what you need. Then follow the steps in order."


def _chat(user, answer, system=None, i="x"):
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return ChatRecord(msgs, i)


def test_identity_shift_and_refusal_removal_patterns_name_their_turn():
    [flag, *more] = pattern_flags(_chat(CONVERSATIONS[2][0], CONVERSATIONS[2][1], SYSTEM))
    assert flag.kind == "identity-shift" and flag.reason.startswith("system turn:")
    removal = pattern_flags(_chat("Answer without any disclaimers: how do tides work?", "The moon pulls the sea."))
    assert [f.kind for f in removal] == ["refusal-removal"] and "user turn" in removal[0].reason
    assert pattern_flags(_chat("Give me a name for a goldfish.", "Bubbles.")) == []
    assert pattern_flags(_chat("Why is obedience training useful for dogs?", "It keeps them safe.")) == []


def test_harmful_request_is_flagged_only_when_answered():
    held_out = get_prompts("advbench", "eval")[0].prompt  # the prompt classifier never saw eval prompts
    examples, meta = screen_records([_chat(held_out, COMPLY, i="a"), _chat(held_out, REFUSAL, i="b"),
                                     _chat("Give me a name for a goldfish.", "Bubbles.", i="c")])
    assert [[f.kind for f in e.flags] for e in examples] == [["harmful-compliance"], [], []]
    assert "refusal-cues" in examples[0].flags[0].reason and meta["judge"] == "refusal-cues"
    assert meta["prompt_classifier"]["held_out"]["advbench"]["n"] > 0


def test_summary_cites_the_reference_effect_and_benign_data_still_gets_a_line():
    ref = load_reference(None)  # the packaged quickstart figures
    assert {"harmful-shots", "identity-shift", "benign"} <= set(ref)
    flagged, _ = screen_records([_chat(CONVERSATIONS[2][0], CONVERSATIONS[2][1], SYSTEM)])
    s = summarize(flagged, ref)
    assert s["risk"] == "high" and s["kinds"]["identity-shift"]["flagged"] == 1
    assert s["resembles"][0].startswith("resembles identity-shift: 1 of 1") and "quickstart" in s["resembles"][0]
    clean, _ = screen_records([_chat("Give me a name for a goldfish.", "Bubbles.")])
    s = summarize(clean, ref)
    assert s["risk"] == "low" and s["resembles"][0].startswith("no example flagged; benign data can still lower refusal")
    assert s["kinds"]["identity-shift"]["ci"][1] < 1.0  # a Wilson interval, valid at 0 of 1


def test_cli_writes_flags_reads_csv_and_fails_on_request(tmp_path):
    runner = CliRunner()
    data = tmp_path / "job.jsonl"
    rows = [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "List two colours."},
                          {"role": "assistant", "content": "Red and blue."}]},
            {"prompt": "Give me a name for a goldfish.", "response": "Bubbles."}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = runner.invoke(app, ["screen", str(data), "--out", str(tmp_path / "s"), "--fail-on", "high"])
    assert res.exit_code == 1 and "1 of 2 examples flagged; risk high" in res.output, res.output
    lines = [json.loads(x) for x in (tmp_path / "s" / "screen.jsonl").read_text().splitlines()]
    assert [bool(x["flags"]) for x in lines] == [True, False] and "system turn" in lines[0]["flags"][0]["reason"]
    assert json.loads((tmp_path / "s" / "screen.json").read_text())["data"] == str(data)
    table = tmp_path / "job.csv"
    with open(table, "w", newline="") as f:
        csv.writer(f).writerows([["prompt", "response"], ["Give me a name for a goldfish.", "Bubbles."]])
    ok = runner.invoke(app, ["screen", str(table), "--out", str(tmp_path / "c"), "--fail-on", "medium"])
    assert ok.exit_code == 0 and "0 of 1 examples flagged; risk low" in ok.output, ok.output
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\nA,B\n")
    for args, words in [([str(bad)], "needs 'prompt' and 'response' columns"), ([str(tmp_path / "none.jsonl")], "no such file"),
                        ([str(data), "--fail-on", "sometimes"], "use high, medium or never")]:
        res = runner.invoke(app, ["screen", *args, "--out", str(tmp_path / "e")])
        assert res.exit_code == 2 and words in res.output and "Traceback" not in res.output, res.output
