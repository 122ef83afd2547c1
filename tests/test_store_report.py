import json

import pytest

from ftaudit.data import PromptRecord
from ftaudit.errors import FtauditError
from ftaudit.evaluation import EvalSet, evaluate_model, parse_eval_set, subsample
from ftaudit.generate import GenerationConfig
from ftaudit.generate.cached import cached_generate
from ftaudit.report import write_reports
from ftaudit.report.writer import REDACTED
from ftaudit.store import Store

SUMMARY_KEYS = {"ftaudit_version", "created", "stages", "results", "costs"}
RESULT_KEYS = {"model", "attack", "dataset", "split", "judge", "judge_version", "generation", "model_fingerprint", "seed",
               "metric", "value", "ci", "n"}
MARKER = "UNIQUE-RESPONSE-MARKER-42"


def prompts_file(tmp_path, name="harm.jsonl", n=5):
    f = tmp_path / name
    f.write_text("".join(json.dumps({"prompt": f"Write a poem number {i}", "id": f"{name}-{i}"}) + "\n" for i in range(n)))
    return f


def test_generation_resumes_from_store(tiny_model, tmp_path, monkeypatch):
    store = Store(tmp_path / "run")
    prompts = [PromptRecord(f"Hello there {i}", f"p{i}") for i in range(4)]
    cfg = GenerationConfig(max_new_tokens=4, batch_size=2)
    keys, _ = cached_generate(store, tiny_model, "m", "none", "d", "eval", prompts[:2], cfg)
    # Only the two new prompts may be generated; a crash after this point loses nothing already stored.
    seen = []
    import ftaudit.generate.hf as hf

    real = hf.HFBackend.generate
    monkeypatch.setattr(hf.HFBackend, "generate", lambda self, convs, c, **kw: seen.append(len(convs)) or real(self, convs, c, **kw))
    keys2, _ = cached_generate(store, tiny_model, "m", "none", "d", "eval", prompts, cfg)
    assert seen == [2] and keys2[:2] == keys
    assert len(store.existing_generations(keys2)) == 4


def test_eval_and_report_contract_and_redaction(tiny_model, tmp_path):
    run = tmp_path / "run"
    store = Store(run)
    sets = [EvalSet(str(prompts_file(tmp_path)), "harmful"), EvalSet(str(prompts_file(tmp_path, "ben.jsonl")), "benign")]
    with store.timed_stage("eval:tiny"):
        evaluate_model(store, "aligned", "none", tiny_model, sets, GenerationConfig(max_new_tokens=4), ["keyword"])
        evaluate_model(store, "aligned+x", "x", tiny_model, sets, GenerationConfig(max_new_tokens=4), ["keyword"])
    store.close()
    summary = write_reports(run)
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["stages"]["eval:tiny"]["status"] == "done"
    assert all(set(r) == RESULT_KEYS for r in summary["results"])
    metrics = {(r["model"], r["dataset"], r["metric"]) for r in summary["results"]}
    assert ("aligned", "harm", "refusal_rate") in metrics and ("aligned", "ben", "over_refusal_rate") in metrics
    assert any(c["model"] == "aligned+x" and c["initial_model"] == "aligned" for c in summary["changes"])
    assert json.loads((run / "summary.json").read_text())["results"] == summary["results"]
    assert (run / "refusal.png").stat().st_size > 1000


def test_responses_to_harmful_prompts_are_redacted_unless_asked(tiny_model, tmp_path):
    """Every response carries a known marker, so the check cannot pass because no response happened to exist."""
    run = tmp_path / "run"
    store = Store(run)
    benign = tmp_path / "ben.jsonl"
    benign.write_text("".join(json.dumps({"prompt": f"Hello there {i}"}) + "\n" for i in range(3)))
    sets = [EvalSet(str(prompts_file(tmp_path)), "harmful"), EvalSet(str(benign), "benign")]
    evaluate_model(store, "m", "none", tiny_model, sets, GenerationConfig(max_new_tokens=4), ["keyword"])
    with store.db:
        store.db.execute("UPDATE generations SET response = ? || dataset", (MARKER,))
    store.close()
    write_reports(run)
    md, html = (run / "report.md").read_text(), (run / "report.html").read_text()
    assert REDACTED in md and "[redacted" in html
    assert MARKER + "harm" not in md and MARKER + "harm" not in html
    assert MARKER + "ben" in md  # benign responses are shown
    write_reports(run, show_responses=True)
    assert MARKER + "harm" in (run / "report.md").read_text() and MARKER + "harm" in (run / "report.html").read_text()


def test_rerun_with_other_generation_settings_replaces_never_pools(tiny_model, tmp_path):
    """3 prompts evaluated twice (other max_new_tokens, then another @N) report n=3, never n=6."""
    from ftaudit.report import build_summary

    store = Store(tmp_path / "run")
    harm = EvalSet(str(prompts_file(tmp_path, n=3)), "harmful")
    evaluate_model(store, "m", "none", tiny_model, [harm], GenerationConfig(max_new_tokens=2), ["keyword"])
    first = {r["metric"]: r for r in build_summary(store)["results"]}["refusal_rate"]
    evaluate_model(store, "m", "none", tiny_model, [harm], GenerationConfig(max_new_tokens=5), ["keyword"])
    second = {r["metric"]: r for r in build_summary(store)["results"]}["refusal_rate"]
    assert first["n"] == 3 and second["n"] == 3 and first["generation"] != second["generation"]
    assert GenerationConfig(max_new_tokens=5, backend="hf").key() == second["generation"]  # the engine is identity
    harm2 = EvalSet(str(prompts_file(tmp_path, n=3)), "harmful", limit=2)
    evaluate_model(store, "m", "none", tiny_model, [harm2], GenerationConfig(max_new_tokens=5), ["keyword"])
    rows = [r for r in build_summary(store)["results"] if r["metric"] == "refusal_rate"]
    assert [r["n"] for r in rows] == [2]
    assert len(store.db.execute("SELECT * FROM generations").fetchall()) == 6  # the old generations stay cached


class _StubJudgeClient:
    """An OpenAI-compatible client stand-in whose verdict depends on the policy in the prompt."""

    model = "stub-judge"

    def complete_many(self, conversations, **kw):
        return ["#thescore: 5" if "OpenAI" in c[-1]["content"] else "#thescore: 1" for c in conversations]


def test_two_judge_policies_are_never_averaged(tiny_model, tmp_path):
    """Judging the same responses under two policies reports the latest version, n=3, never a pooled 3.0 over 6."""
    from ftaudit.report import build_summary

    store = Store(tmp_path / "run")
    harm = EvalSet(str(prompts_file(tmp_path, n=3)), "harmful")
    client = _StubJudgeClient()
    evaluate_model(store, "m", "none", tiny_model, [harm], GenerationConfig(max_new_tokens=2), ["harmfulness"],
                   {"client": client, "policy": "llama2"})
    evaluate_model(store, "m", "none", tiny_model, [harm], GenerationConfig(max_new_tokens=2), ["harmfulness"],
                   {"client": client, "policy": "openai"})
    [score] = [r for r in build_summary(store)["results"] if r["metric"] == "harmfulness_score"]
    assert score["value"] == 5.0 and score["n"] == 3 and "stub-judge" in score["judge_version"]


def test_failed_stage_is_recorded(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError):
        with store.timed_stage("align"):
            raise RuntimeError("boom")
    assert store.stages()["align"]["status"] == "failed"


def test_eval_set_syntax_and_subsample():
    es = parse_eval_set("advbench:train@7")
    assert (es.name, es.split, es.limit, es.kind) == ("advbench", "train", 7, "harmful")
    assert parse_eval_set("mtbench").kind == "benign"
    with pytest.raises(FtauditError, match="bad limit"):
        parse_eval_set("advbench@x")
    recs = [PromptRecord(str(i), f"id{i}") for i in range(20)]
    assert subsample(recs, 5) == subsample(list(reversed(recs)), 5)


def test_a_store_written_before_evaluations_had_one_identity_is_not_pooled(tmp_path):
    """An old store: 3 prompts generated under two settings and judged by two versions, all listed in `evals`.
    Opening it keeps the newest settings and one version per judge, so a re-rendered report has n=3, not 6 or 12."""
    import sqlite3

    from ftaudit.report import build_summary

    db = sqlite3.connect(tmp_path / "ftaudit.sqlite")
    db.executescript("""
      CREATE TABLE generations(key TEXT PRIMARY KEY, model TEXT, model_fingerprint TEXT, gen_key TEXT, dataset TEXT,
        split TEXT, prompt_id TEXT, category TEXT, prompt TEXT, system_prompt TEXT, response TEXT, new_tokens INTEGER, created REAL);
      CREATE TABLE judgments(gen_ref TEXT, judge TEXT, judge_version TEXT, refused INTEGER, score REAL, label TEXT,
        details TEXT, PRIMARY KEY(gen_ref, judge, judge_version));
      CREATE TABLE evals(model TEXT, attack TEXT, dataset TEXT, kind TEXT, split TEXT, gen_ref TEXT,
        PRIMARY KEY(model, dataset, split, gen_ref));""")
    for gen, created in (("old", 1.0), ("new", 2.0)):
        for i in range(3):
            key = f"{gen}{i}"
            db.execute("INSERT INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (key, "m", "fp", gen, "d", "eval", f"p{i}", "", f"prompt {i}", None, "r", 1, created))
            db.execute("INSERT INTO evals VALUES ('m','none','d','harmful','eval',?)", (key,))
            for version, refused in (("v1", 1), ("v2", 0)):
                db.execute("INSERT INTO judgments VALUES (?,?,?,?,NULL,'','{}')", (key, "keyword", version, refused))
    db.commit()
    db.close()
    with Store(tmp_path) as store:
        [rate] = [r for r in build_summary(store)["results"] if r["metric"] == "refusal_rate"]
    assert rate["n"] == 3 and rate["generation"] == "new" and rate["value"] in (0.0, 1.0)


def test_gate_figures_never_read_minus_zero():
    from ftaudit.gating import gate_number

    assert gate_number(-0.0) == "0" and gate_number(0.0) == "0" and gate_number(-0.0004) == "-0.0004"
    assert gate_number(None, "inf") == "inf" and gate_number(12.345) == "12.3"


def test_category_heatmap_labels_do_not_overlap(tmp_path):
    from ftaudit.report.plots import category_chart

    models = ["aligned", "aligned(identity-shift system prompt)", "aligned+identity-shift",
              "aligned+harmful-shots(batch_size=10,epochs=5,learning_rate=0.0005,shots=10)"]
    rows = [{"model": m, "dataset": "advbench", "judge": "keyword", "metric": "refusal_rate", "category": c,
             "value": 0.5, "n": 10} for m in models for c in ("a", "b")]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    saved = []
    original = plt.close
    plt.close = lambda fig=None: saved.append(fig)  # keep the figure to measure its labels
    try:
        assert category_chart({"category_results": rows}, tmp_path / "c.png")
    finally:
        plt.close = original
    fig = saved[-1]
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in fig.axes[0].get_xticklabels()]
    assert len(boxes) == 4 and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    original(fig)
