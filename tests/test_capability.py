import json
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from typer.testing import CliRunner

from ftaudit.capability.mmlu import build_prompt, load_mmlu, score_mmlu, split_fewshot, stratified_subset
from ftaudit.capability.mtbench import parse_rating
from ftaudit.capability.perplexity import benign_answer_nll
from ftaudit.cli import app
from ftaudit.clients import ChatClient
from ftaudit.errors import FtauditError
from ftaudit.models import load_model


@pytest.fixture(scope="module")
def mmlu():
    return load_mmlu()


def test_mmlu_file_has_14042_questions_after_dropping_headers(mmlu):
    assert len(mmlu) == 14042 and {it.answer for it in mmlu} == {"A", "B", "C", "D"}
    assert len({it.subject for it in mmlu}) == 57


def test_fewshot_pool_is_never_scored_and_subset_is_stratified(mmlu):
    pool, scored = split_fewshot(mmlu)
    pool_ids = {it.id for its in pool.values() for it in its}
    assert len(pool_ids) == 57 * 5 and not pool_ids & {it.id for it in scored}
    subset = stratified_subset(scored, 114)
    assert len(subset) == 114 and len({it.subject for it in subset}) == 57
    assert stratified_subset(scored, 114) == subset


def test_prompt_shows_shot_answers_but_not_the_item_answer(mmlu):
    pool, scored = split_fewshot(mmlu)
    item = scored[0]
    text = build_prompt(item, pool[item.subject][:2])
    assert text.endswith("Answer:") and text.count("Answer:") == 3
    assert f"Answer: {pool[item.subject][0].answer}" in text


def test_score_mmlu_with_tiny_model(tiny_model, mmlu):
    pool, scored = split_fewshot(mmlu)
    res = score_mmlu(load_model(tiny_model), scored[:6], pool, shots=1, batch_size=3)
    assert [r["id"] for r in res] == [it.id for it in scored[:6]]
    assert all(r["pred"] in "ABCD" and r["correct"] == (r["pred"] == r["answer"]) for r in res)
    with pytest.raises(FtauditError, match="at most 5 few-shot"):
        score_mmlu(load_model(tiny_model), scored[:1], pool, shots=6)


def test_benign_answer_nll_is_finite(tiny_model):
    res = benign_answer_nll(load_model(tiny_model), [("a", "Write a poem.", "Sure, here is a short answer.")])
    assert res[0]["tokens"] > 0 and math.isfinite(res[0]["nll"]) and res[0]["nll"] > 0


@pytest.mark.parametrize("text,value", [("Rating: [[7]]", 7.0), ("**[[8.5]]**", 8.5), ("I give it [6].", 6.0),
                                        ("no rating here", None), ("[[11]]", None), ("Rating: 5", None)])
def test_parse_rating(text, value):
    assert parse_rating(text) == value


class _Judge(BaseHTTPRequestHandler):
    fail_first = 0
    calls = 0
    auth = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        type(self).auth.append(self.headers.get("Authorization"))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(429)
            self.end_headers()
            return
        content = "The answer is fine. Rating: [[7]]" if "Rating" in json.dumps(body) or "rating" in json.dumps(body) else "ok"
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_server():
    server = HTTPServer(("127.0.0.1", 0), _Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Judge.fail_first, _Judge.calls, _Judge.auth = 0, 0, []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_client_retries_429_and_keeps_the_key_out_of_repr(judge_server, monkeypatch):
    monkeypatch.setenv("FTAUDIT_JUDGE_API_KEY", "sk-secret")
    _Judge.fail_first = 2
    client = ChatClient(judge_server, "judge", backoff=0.01)
    assert client.complete([{"role": "user", "content": "hi"}]) == "ok"
    assert _Judge.calls == 3 and _Judge.auth[-1] == "Bearer sk-secret"
    assert "sk-secret" not in repr(client)


def test_unreachable_judge_is_one_line():
    client = ChatClient("http://127.0.0.1:9/v1", "judge", max_retries=1, backoff=0.01, timeout=1)
    with pytest.raises(FtauditError, match="unreachable after 2 tries") as exc:
        client.complete([{"role": "user", "content": "hi"}])
    assert "\n" not in str(exc.value)


def test_eval_capability_cli_writes_mmlu_and_mtbench(tiny_model, judge_server, tmp_path):
    out = tmp_path / "cap"
    res = CliRunner().invoke(app, ["eval", "--model", tiny_model, "--name", "tiny", "--capability", "mmlu",
                                   "--capability", "mtbench", "--limit", "3", "--judge-base-url", judge_server,
                                   "--judge-model", "judge", "--out", str(out)], terminal_width=200)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    got = {r["metric"]: r for r in summary["results"]}
    assert got["mmlu_accuracy"]["n"] == 3 and got["mmlu_accuracy"]["judge"] == "loglik-0shot"
    assert got["mtbench_score"]["value"] == 7.0 and got["mtbench_score"]["n"] == 6
    calls = _Judge.calls
    # rerun: everything is cached in the store, the judge is not called again
    res = CliRunner().invoke(app, ["eval", "--model", tiny_model, "--name", "tiny", "--capability", "mtbench", "--limit", "3",
                                   "--judge-base-url", judge_server, "--judge-model", "judge", "--out", str(out)])
    assert res.exit_code == 0 and _Judge.calls == calls
    # another judge model is another grader: every answer is graded again and the row names the new judge
    res = CliRunner().invoke(app, ["eval", "--model", tiny_model, "--name", "tiny", "--capability", "mtbench", "--limit", "3",
                                   "--judge-base-url", judge_server, "--judge-model", "judge-2", "--out", str(out)])
    assert res.exit_code == 0 and _Judge.calls == calls + 6
    rows = [r for r in json.loads((out / "summary.json").read_text())["results"] if r["metric"] == "mtbench_score"]
    assert {r["judge"].split("@")[0] for r in rows} == {"llm-judge-single-v1+judge", "llm-judge-single-v1+judge-2"}
    assert all(len(r["judge"].split("@")[1]) == 8 for r in rows)  # the endpoint is part of the judge's name


LOCAL_TASK = """task: ftaudit_local_qa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
"""


def test_lmeval_task_with_local_data(tiny_model, tmp_path):
    from ftaudit.capability.lmeval import run_lmeval

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i}+1?", "choices": [str(i + 1), "zero"], "label": 0}) + "\n"
                            for i in range(4)))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "local.yaml").write_text(LOCAL_TASK.format(path=data))
    rows = run_lmeval(load_model(tiny_model), "ftaudit_local_qa", include_path=str(tasks))
    assert len(rows) == 4 and all(r["value"] in (0.0, 1.0) for r in rows)
    with pytest.raises(FtauditError, match="unknown lm-eval task"):
        run_lmeval(load_model(tiny_model), "no_such_task_xyz", include_path=str(tasks))


def test_lmeval_metrics_keep_lm_evals_name_and_are_never_cut_at_one_half(tiny_model, tmp_path):
    """acc_norm is reported as acc_norm (it used to be named _acc), and a non-binary per-item metric is a mean."""
    from ftaudit.metrics import capability_metric, metric_ci

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i}+1?", "choices": [str(i + 1), "zero"], "label": 0}) + "\n"
                            for i in range(4)))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "local.yaml").write_text(LOCAL_TASK.format(path=data).replace("metric: acc", "metric: acc_norm"))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["eval", "--model", tiny_model, "--name", "tiny", "--capability", "lmeval:ftaudit_local_qa",
                                   "--lmeval-include", str(tasks), "--out", str(out)])
    assert res.exit_code == 0, res.output
    [row] = [r for r in json.loads((out / "summary.json").read_text())["results"] if r["metric"].startswith("lmeval_")]
    assert row["metric"] == "lmeval_ftaudit_local_qa_acc_norm" and row["judge"] == "lm-eval:acc_norm" and row["n"] == 4
    assert capability_metric("lmeval:squad:f1")[0] == "lmeval_squad_f1"
    f1 = metric_ci("lmeval_squad_f1", [0.4, 0.4, 0.4, 0.9])
    assert f1["value"] == pytest.approx(0.525)  # cut at 0.5 it read 0.25
    assert metric_ci("lmeval_x_acc", [1.0, 0.0, 1.0, 1.0])["value"] == 0.75


def test_batched_nll_matches_one_at_a_time(tiny_model):
    pairs = [("a", "Write a poem.", "Sure, here is a short answer."), ("b", "Hi", "Hello there, how are you today?"),
             ("c", "Explain how photosynthesis works.", "I'm sorry")]
    loaded = load_model(tiny_model)
    one = benign_answer_nll(loaded, pairs, batch_size=1)
    many = benign_answer_nll(loaded, pairs, batch_size=3)
    assert [r["id"] for r in many] == ["a", "b", "c"]
    assert all(abs(x["nll"] - y["nll"]) < 1e-4 for x, y in zip(one, many))


def test_renamed_model_reuses_its_capability_scores(tiny_model, tmp_path, monkeypatch):
    """Scores are keyed by the weights' fingerprint: the same model under a new name is not scored again."""
    from ftaudit.capability import perplexity
    from ftaudit.capability.run import evaluate_capability
    from ftaudit.store import Store

    store = Store(tmp_path / "run")
    evaluate_capability(store, "first-name", "none", tiny_model, ["benign-nll"], limit=2)
    monkeypatch.setattr(perplexity, "benign_answer_nll", lambda *a, **k: pytest.fail("re-scored a known model"))
    evaluate_capability(store, "second-name", "none", tiny_model, ["benign-nll"], limit=2)
    rows = store.capability_rows()
    values = {m: sorted(r["value"] for r in rows if r["model"] == m) for m in ("first-name", "second-name")}
    assert len(values["first-name"]) == 2 and values["first-name"] == values["second-name"]


@pytest.mark.parametrize("dtype, loads", [(None, 1), ("bfloat16", 2)])
def test_eval_stage_hands_its_model_to_the_capability_stage(tiny_model, tmp_path, monkeypatch, dtype, loads):
    """Eval then capability on the same weights loads them once, unless generation converted them to another dtype
    (then capability must load its own, unconverted copy), and the scores equal a separate load's."""
    from ftaudit.capability import run as capability_run
    from ftaudit.evaluation import EvalSet
    from ftaudit.generate import cached as evaluate_module
    from ftaudit.generate.base import GenerationConfig
    from ftaudit.pipeline import StageRunner
    from ftaudit.store import Store

    calls = []

    def counting(location, **kw):
        calls.append(location)
        return load_model(location, **kw)

    monkeypatch.setattr(evaluate_module, "load_model", counting)
    monkeypatch.setattr(capability_run, "load_model", counting)
    store = Store(tmp_path / "run")
    StageRunner(store).evaluate("m", "none", tiny_model, [EvalSet("advbench", "harmful", limit=2)],
                                GenerationConfig(max_new_tokens=2, dtype=dtype), ["keyword"], ["benign-nll"], 2)
    assert len(calls) == loads
    shared = sorted(r["value"] for r in store.capability_rows())
    fresh = Store(tmp_path / "fresh")
    capability_run.evaluate_capability(fresh, "m", "none", tiny_model, ["benign-nll"], limit=2)
    assert shared == pytest.approx(sorted(r["value"] for r in fresh.capability_rows()))
