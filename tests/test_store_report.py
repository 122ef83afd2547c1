import json

import pytest

from ftaudit.data import PromptRecord
from ftaudit.evaluate import EvalSet, cached_generate, evaluate_model, parse_eval_set, subsample
from ftaudit.errors import FtauditError
from ftaudit.generate import GenerationConfig
from ftaudit.report import write_reports
from ftaudit.report.render import REDACTED
from ftaudit.store import Store

SUMMARY_KEYS = {"ftaudit_version", "created", "stages", "results", "costs"}
RESULT_KEYS = {"model", "attack", "dataset", "split", "judge", "metric", "value", "ci", "n"}


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
    md, html = (run / "report.md").read_text(), (run / "report.html").read_text()
    harmful_response = Store(run).db.execute("SELECT response FROM generations WHERE dataset='harm' AND response != ''").fetchone()
    assert REDACTED in md and "[redacted" in html
    if harmful_response:
        assert harmful_response[0][:40] not in md.split("## Sample responses")[1].replace("|", "/")
    assert (run / "refusal.png").stat().st_size > 1000
    write_reports(run, show_responses=True)
    assert REDACTED not in (run / "report.md").read_text()


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
