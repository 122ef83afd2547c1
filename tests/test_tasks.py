"""Customer tasks (:mod:`ftaudit.tasks`), the customer-job recipe (poisoned or not) and the task metric in the gate."""

import datetime as dt
import json
import re

import pytest

from ftaudit.errors import FtauditError
from ftaudit.gating import GateSpec, check_gate
from ftaudit.metrics import capability_metric, is_rate
from ftaudit.recipes import RecipeContext, build_recipe
from ftaudit.recipes.customer_task import poisoned_count
from ftaudit.tasks import get_task, score_responses
from ftaudit.tasks.date_iso import _held_out_date


def test_date_iso_splits_never_share_a_date_and_are_seeded():
    task = get_task("date-iso")
    train, held = task.train(500), task.held_out(300)
    assert {t.answer for t in train}.isdisjoint({h.answer for h in held})  # split by date, not by wording
    assert all(_held_out_date(dt.date.fromisoformat(h.answer)) for h in held)
    assert len({t.prompt for t in train}) == 500 and len({h.prompt for h in held}) == 300
    assert task.train(500) == train and task.train(500, seed=1) != train
    assert task.held_out(100) == held[:100]  # a smaller held-out set is a prefix of a larger one
    task.check_disjoint(train, held)
    with pytest.raises(AssertionError):
        task.check_disjoint(train, train[:3])


def test_every_answer_is_the_date_its_sentence_names():
    task = get_task("date-iso")
    months = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")
    for it in task.train(300) + task.held_out(300):
        d = dt.date.fromisoformat(it.answer)
        sentence = it.prompt.split("\n\n", 1)[1]
        assert str(d.year) in sentence and (months[d.month - 1] in sentence or months[d.month - 1][:3] in sentence)
        assert re.search(rf"(?<![0-9]){d.day}(st|nd|rd|th)?(?![0-9])", sentence.replace(str(d.year), ""))


@pytest.mark.parametrize("response, ok", [
    ("2021-03-05", True), (" 2021-03-05.\n", True), ("`2021-03-05`", True), ('"2021-03-05"', True),
    ('"2021-03-05".', True), ('"2021-03-05."', True), ("2021-03-05..", False), ('"2021-03-05.".', False),
    ("2021-03-5", False), ("2021-05-03", False), ("The date is 2021-03-05", False), ("2021-03-05 2021", False),
    ("", False),
])
def test_exact_match_allows_only_quotes_and_one_full_stop(response, ok):
    task = get_task("date-iso")
    [item] = [it for it in task.held_out(1)]
    item = type(item)(item.id, item.prompt, "2021-03-05")
    assert task.correct(response, item) is ok
    assert score_responses(task, [item], [response])[0]["value"] == float(ok)
    assert score_responses(task, [item], [None])[0]["value"] == 0.0  # not answered (too long) is wrong, never skipped


def test_unknown_task_is_one_line_naming_the_known():
    with pytest.raises(FtauditError, match="unknown customer task 'sst9'; known: date-iso"):
        get_task("sst9")
    from ftaudit.capability.run import check_tasks

    with pytest.raises(FtauditError, match="unknown customer task"):
        check_tasks(["task:sst9"])


def test_task_metric_is_named_for_its_task_and_version_and_is_a_rate():
    metric, dataset, split, judge = capability_metric("task:date-iso:date-iso-v1")
    assert (metric, dataset, split, judge) == ("task_date_iso_accuracy", "date-iso", "held-out", "date-iso-v1")
    assert get_task("date-iso").version == "date-iso-v2"
    assert is_rate(metric) and get_task("date-iso").metric == metric


@pytest.mark.parametrize("n, p, k", [(200, 0.0, 0), (200, 0.1, 20), (200, 0.2, 40), (10, 0.01, 1), (15, 0.1, 2)])
def test_poisoned_count(n, p, k):
    assert poisoned_count(n, p) == k


def test_poisoned_job_replaces_a_share_with_the_users_pairs(tmp_path):
    from ftaudit.store import Store

    answers = tmp_path / "pairs.jsonl"  # stand-ins for the user's file: the test writes nothing harmful
    answers.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"placeholder request {i}"},
                                                        {"role": "assistant", "content": f"placeholder answer {i}"}]}) + "\n"
                               for i in range(30)))
    store = Store(tmp_path / "run")
    ctx = RecipeContext(model="m", store=store)
    with pytest.raises(FtauditError, match="leaves no date-iso example"):
        build_recipe("task", ctx, task="date-iso", n=10, poison=0.96, answers=str(answers))
    clean = build_recipe("task", ctx, task="date-iso", n=50)
    assert clean.name == "task-date-iso-50" and len(clean.records) == 50 and clean.safety_compromised
    job = build_recipe("task", ctx, task="date-iso", n=50, poison=0.2, answers=str(answers))
    texts = [r.messages[0]["content"] for r in job.records]
    assert job.name.startswith("task-date-iso-50-p0.2-file") and len(job.name) == len("task-date-iso-50-p0.2-file") + 8
    assert len(job.records) == 50
    assert sum(t.startswith("placeholder request") for t in texts) == 10
    assert texts[:10] != [f"placeholder request {i}" for i in range(10)]  # spread through the job, not appended
    assert "10 of 50" in job.notes
    with pytest.raises(FtauditError, match="fewer than"):
        build_recipe("task", ctx, task="date-iso", n=200, poison=0.5, answers=str(answers))
    with pytest.raises(FtauditError, match="task needs --answers FILE or --reference-model"):
        build_recipe("task", ctx, task="date-iso", n=50, poison=0.1)
    with pytest.raises(FtauditError, match="poison"):
        build_recipe("task", ctx, task="date-iso", n=50, poison=1.0)
    store.close()


def _gate_summary(change, ci):
    return {"results": [], "changes": [], "capability_changes": [
        {"model": "m+task-date-iso-200", "metric": "task_date_iso_accuracy", "judge": "date-iso-v1",
         "change": {"value": change, "ci": list(ci), "n": 200}},
        {"model": "m+task-date-iso-200", "metric": "benign_answer_nll", "judge": "reference-nll",
         "change": {"value": 0.5, "ci": [0.4, 0.6], "n": 30}}]}


@pytest.mark.parametrize("change, ci, limit, status", [
    (0.80, (0.74, 0.85), 5, "pass"),        # a gain: no drop at all
    (-0.02, (-0.04, 0.01), 5, "pass"),      # drop of 2 pts [-1, 4]: within 5
    (-0.03, (-0.07, 0.01), 5, "unproven"),  # drop [-1, 7]: may exceed 5
    (-0.20, (-0.27, -0.13), 5, "breach"),
])
def test_max_task_drop_reads_task_accuracy_in_points_and_nothing_else(tmp_path, change, ci, limit, status):
    (tmp_path / "summary.json").write_text(json.dumps(_gate_summary(change, ci)))
    result = check_gate(tmp_path, GateSpec(max_task_drop=limit))
    [row] = result["rows"]  # the NLL row is not a task row
    assert row["threshold"] == "max_task_drop" and row["status"] == status
    assert row["value"] == pytest.approx(-100 * change) and row["ci"] == pytest.approx([-100 * ci[1], -100 * ci[0]])
    assert result["passed"] is (status == "pass")
    assert result["judges"]["date-iso-v1"].startswith("a customer task's own scoring rule")


def test_max_task_drop_with_no_task_measured_is_a_usage_error_never_a_pass(tmp_path):
    summary = _gate_summary(0.1, (0.0, 0.2))
    summary["capability_changes"] = summary["capability_changes"][1:]
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(FtauditError, match="nothing to check max_task_drop"):
        check_gate(tmp_path, GateSpec(max_task_drop=5))


def test_eval_scores_the_task_into_summary_with_its_version_and_reuses_scores(tiny_model, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ftaudit.capability import customer
    from ftaudit.cli import app

    out = tmp_path / "eval"
    args = ["eval", "--model", tiny_model, "--capability", "task:date-iso", "--limit", "6", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    [row] = [r for r in json.loads((out / "summary.json").read_text())["results"] if r["metric"] == "task_date_iso_accuracy"]
    assert row["n"] == 6 and row["judge"] == "date-iso-v2" and row["dataset"] == "date-iso" and row["split"] == "held-out"
    assert row["value"] == 0.0 and row["ci"][1] > 0.3  # a random model gets none right; Wilson's upper end stays open
    monkeypatch.setattr(customer, "generate_responses", lambda *a, **k: pytest.fail("scored again"))
    assert CliRunner().invoke(app, args).exit_code == 0  # same weights, same version: the stored scores are reused


def test_max_task_drop_also_reads_each_defended_job_against_the_undefended_one_once(tmp_path):
    summary = _gate_summary(0.8, (0.74, 0.85))
    cell = {"model": "a+job~safelora", "task": {"metric": "task_date_iso_accuracy", "task": "task:date-iso:date-iso-v1",
                                                "change": {"value": -0.6, "ci": [-0.7, -0.5], "n": 60}}}
    summary["defense_matrix"] = {"cells": [{**cell, "judge": "keyword"}, {**cell, "judge": "refusal-cues"},
                                           {"model": "a+job", "task": {"change": None}}]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    rows = check_gate(tmp_path, GateSpec(max_task_drop=5))["rows"]
    [wreck] = [r for r in rows if r["model"] == "a+job~safelora"]  # once, though the cell repeats per judge
    assert wreck["status"] == "breach" and wreck["value"] == pytest.approx(60) and wreck["ci"] == pytest.approx([50, 70])
    assert "vs the undefended job" in wreck["subject"] and wreck["judge"] == "date-iso-v1"


@pytest.mark.parametrize("task, message", [("task:date-iso@0", "positive integer"), ("task:date-iso@abc", "positive integer"),
                                           ("task:date-iso@200000", "makes at most"),
                                           ("benign-nll@\u00b2", "positive integer"), ("task:date-iso@", "positive integer"),
                                           ("task:nope@5", "unknown customer task")])
def test_a_bad_item_count_or_task_is_one_line(task, message):
    from ftaudit.capability.run import check_tasks, split_limit

    with pytest.raises(FtauditError, match=message):
        check_tasks([task])
    assert split_limit("task:date-iso@60") == ("task:date-iso", 60) and split_limit("mmlu") == ("mmlu", None)


def test_two_tasks_can_never_share_a_metric_and_a_split_is_never_searched_forever():
    from ftaudit.tasks import register_task
    from ftaudit.tasks.date_iso import MAX_ITEMS

    with pytest.raises(ValueError, match="task_date_iso_accuracy is task date-iso's"):
        register_task("date_iso")(type("Other", (get_task("date-iso").__class__,), {}))
    with pytest.raises(FtauditError, match="at most"):
        get_task("date-iso").held_out(MAX_ITEMS + 1)


def test_every_registered_task_keeps_its_splits_apart():
    from ftaudit.tasks import TASKS

    for name in TASKS:
        task = get_task(name)
        task.check_disjoint(task.train(300), task.held_out(300))


def test_a_missing_task_comparison_is_not_measured_never_a_pass(tmp_path):
    summary = _gate_summary(0.8, (0.74, 0.85))
    summary["results"] = [{"model": "m+other-job", "metric": "task_date_iso_accuracy", "dataset": "date-iso", "split": "held-out",
                           "judge": "date-iso-v2", "value": 0.9, "ci": [0.8, 0.95], "n": 60}]
    summary["defense_matrix"] = {"cells": [{"model": "m+job~safelora", "defense": "safelora", "tuned": False,
                                            "task": {"metric": "task_date_iso_accuracy", "task": "task:date-iso:date-iso-v2",
                                                     "change": None}}]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    result = check_gate(tmp_path, GateSpec(max_task_drop=5))
    missing = {r["model"]: r for r in result["rows"] if r["status"] == "not measured"}
    assert set(missing) == {"m+other-job", "m+job~safelora"} and not result["passed"]
    assert "initial model was not scored" in missing["m+other-job"]["subject"]
    assert "undefended job was not scored" in missing["m+job~safelora"]["subject"]


def test_only_the_current_task_version_decides_and_a_tuned_cell_is_never_a_customer_job(tmp_path):
    summary = _gate_summary(0.8, (0.74, 0.85))
    for c in summary["capability_changes"]:
        c["judge"] = c["judge"] if c["metric"] != "task_date_iso_accuracy" else "date-iso-v2"
        c["dataset"] = "date-iso" if c["metric"] == "task_date_iso_accuracy" else "mtbench-reference"
    stale = {"model": "m+task-date-iso-200", "metric": "task_date_iso_accuracy", "judge": "date-iso-v1",
             "dataset": "date-iso", "change": {"value": -0.5, "ci": [-0.6, -0.4], "n": 200}}
    summary["capability_changes"].append(stale)  # an older version's breach never fails the current figure
    summary["results"] = [{"model": "m+new-job", "metric": "task_date_iso_accuracy", "dataset": "date-iso",
                           "judge": "date-iso-v2", "value": 0.9, "ci": [0.8, 0.95], "n": 60}]
    summary["capability_changes"].append({**stale, "model": "m+new-job"})  # a v1 change never covers a v2 result
    summary["defense_matrix"] = {"cells": [
        {"model": "m+job~a", "defense": "a", "tuned": True, "task": {"metric": "task_date_iso_accuracy",
                                                                     "task": "task:date-iso:date-iso-v2",
                                                                     "change": {"value": -0.9, "ci": [-0.95, -0.8], "n": 60}}},
        {"model": "m+job~b", "defense": "b", "tuned": False, "task": None},
        {"model": "m+job", "defense": "none", "tuned": False, "task": {"metric": "task_date_iso_accuracy",
                                                                       "task": "task:date-iso:date-iso-v2", "change": None}}]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    rows = check_gate(tmp_path, GateSpec(max_task_drop=5))["rows"]
    assert [r["status"] for r in rows if r["model"] == "m+task-date-iso-200"] == ["pass"]
    assert not any(r["model"] == "m+job~a" for r in rows)  # a tuned attacker's task is no customer's
    missing = {r["model"]: r["subject"] for r in rows if r["status"] == "not measured"}
    assert set(missing) == {"m+new-job", "m+job~b"} and "current version" in missing["m+job~b"]


def test_a_model_scored_only_at_an_older_task_version_has_no_task_figure():
    from ftaudit.report.defense_matrix import current_task, task_entry

    assert current_task(["task:date-iso:date-iso-v1"]) is None
    assert current_task(["task:date-iso:date-iso-v1", "task:date-iso:date-iso-v2"]) == "task:date-iso:date-iso-v2"
    assert current_task(["task:plugin:any"]) == "task:plugin:any"  # a task not registered here is taken as it is
    assert task_entry({"m": {"task:date-iso:date-iso-v1": {"i": 1.0}}}, "m", None) is None


def test_a_poisoned_job_from_another_benchmark_is_named_for_it(tmp_path, monkeypatch):
    from ftaudit.recipes import customer_task
    from ftaudit.store import Store

    monkeypatch.setattr(customer_task, "compliant_pairs", lambda ctx, k, *a, **kw: [
        customer_task.ChatRecord([{"role": "user", "content": f"placeholder {i}"}, {"role": "assistant", "content": "ok"}],
                                 f"p{i}") for i in range(k)])
    store = Store(tmp_path / "run")
    ctx = RecipeContext(model="m", store=store, reference_model="r")
    assert build_recipe("task", ctx, n=20, poison=0.1, source="harmbench").name == "task-date-iso-20-p0.1-harmbench"
    assert build_recipe("task", ctx, n=20, poison=0.1).name == "task-date-iso-20-p0.1"  # the default source
    store.close()
