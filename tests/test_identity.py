"""Every figure has one identity: grid points, tamper curves, held-out prompts, same-prompt baselines and caches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftaudit.cli import app
from ftaudit.errors import FtauditError
from ftaudit.experiments.spec import parse_spec


def _spec(**over) -> dict:
    return {"name": "t", "model": "m", "attacks": [{"recipe": "harmful-shots", "params": {"shots": 10}}], **over}


def _chat(prompt: str, answer: str = "A placeholder answer.") -> str:
    return json.dumps({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}) + "\n"


# ------------------------------------------------------------------------------------- item 4: one name, one model

def test_points_differing_in_any_training_setting_get_their_own_name_identity_and_curve():
    """Reproduced on the old spec: learning rates 1e-4 and 5e-4 were both named harmful-shots(shots=10)."""
    spec = parse_spec(_spec(attacks=[{"recipe": "harmful-shots", "train": {"learning_rate": 1.0e-4}},
                                     {"recipe": "harmful-shots", "train": {"learning_rate": 5.0e-4}}],
                            grid={"params.shots": [10, 50]}))
    points = spec.points()
    assert sorted(p.label for p in points) == [
        "harmful-shots(learning_rate=0.0001,shots=10)", "harmful-shots(learning_rate=0.0001,shots=50)",
        "harmful-shots(learning_rate=0.0005,shots=10)", "harmful-shots(learning_rate=0.0005,shots=50)"]
    assert len({p.identity for p in points}) == 4
    curves = {}
    for p in points:
        curves.setdefault(p.curve, set()).add(p.params["shots"])
    assert sorted(curves.values(), key=sorted) == [{10, 50}, {10, 50}]  # one curve per learning rate, over budget
    assert {p.examples_x_epochs() for p in points} == {50.0, 250.0}  # the recipe's default 5 epochs


def test_answers_files_are_told_apart_by_content_even_under_one_name(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.jsonl").write_text(_chat("First question"))
    (tmp_path / "b" / "x.jsonl").write_text(_chat("Second question"))
    spec = parse_spec(_spec(attacks=[{"recipe": "harmful-shots", "params": {"shots": 1, "answers": str(tmp_path / d / "x.jsonl")}}
                                     for d in ("a", "b")]))
    labels = [p.label for p in spec.points()]
    assert len(set(labels)) == 2 and all(lbl.startswith("harmful-shots(answers=x.jsonl@") for lbl in labels)
    assert len({p.identity for p in spec.points()}) == 2
    (tmp_path / "b" / "x.jsonl").write_text(_chat("First question"))  # now the same content under two paths
    with pytest.raises(FtauditError, match="train the same weights"):  # one training, written twice
        parse_spec(_spec(attacks=[{"recipe": "harmful-shots", "params": {"shots": 1, "answers": str(tmp_path / d / "x.jsonl")}}
                                  for d in ("a", "b")]))


@pytest.mark.parametrize("over", [
    {"attacks": [{"recipe": "harmful-shots"}, {"recipe": "harmful-shots", "params": {"shots": 10},
                                                "train": {"learning_rate": 5.0e-4, "epochs": 5}}]},  # defaults spelled out
    {"grid": {"params.shots": [10, 10]}},
    {"attacks": [{"recipe": "identity-shift"}, {"recipe": "identity-shift", "params": {"n": 10}}]},
])
def test_two_points_that_train_the_same_weights_are_refused_naming_both(over):
    with pytest.raises(FtauditError, match=r"invalid spec: grid: points .* and .* train the same weights"):
        parse_spec(_spec(**over))


def test_shipped_configs_keep_their_point_names():
    """A spec whose points differ only on its grid axes names them as before (stores and README figures match)."""
    from ftaudit.experiments.spec import load_spec

    root = Path(__file__).resolve().parent.parent / "configs"
    assert [p.label for p in load_spec(root / "qi2023" / "table1-mini.yaml").points()] == [
        "harmful-shots(shots=10)", "harmful-shots(shots=50)", "harmful-shots(shots=100)"]
    assert [p.label for p in load_spec(root / "defenses" / "defense-matrix-mini.yaml").points()] == [
        "harmful-shots(batch_size=10,epochs=5,learning_rate=0.0005,shots=10)", "identity-shift(epochs=3,n=10)"]


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps(_spec(align=True, grid={"params.shots": [10, 50]}, defenses=["none", "safelora"])))
    res = CliRunner().invoke(app, ["run", str(spec), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "aligned+harmful-shots(shots=10)" in res.output and "aligned+harmful-shots(shots=50)~safelora" in res.output
    assert "250 examples x epochs" in res.output and "repairs the undefended point's weights" in res.output
    # align 1 + 2 undefended points (safelora repairs their weights); evaluations: aligned + 4 attacked models
    assert "4 attacked models: about 3 trainings and 5 evaluations" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]
    res = CliRunner().invoke(app, ["run", str(spec)])
    assert res.exit_code == 2 and "give --out DIR" in res.output


# ------------------------------------------------------------------------------ item 5: curves compare like with like

def _rows(model: str, refused: list[int], system: str | None = None, fingerprint: str = "f0") -> list[dict]:
    return [{"model": model, "kind": "harmful", "dataset": "advbench", "split": "eval", "prompt_id": f"p{i}",
             "judge": "keyword", "judge_version": "v", "refused": r, "score": None, "system_prompt": system,
             "model_fingerprint": fingerprint, "attack": "x"} for i, r in enumerate(refused)]


def _budget(recipe: str, budget: float, curve: str, label: str = "") -> dict:
    return {"recipe": recipe, "initial_model": "aligned", "examples_x_epochs": budget, "steps": budget, "train_seconds": 1.0,
            "defense": "none", "curve": curve, "curve_label": label}


def test_points_of_different_settings_are_separate_curves_and_the_headline_is_the_weakest():
    """Reproduced on the old grouping: one setting alone crossed at 23.3, mixed with another it read 50.0."""
    from ftaudit.report.tamper_scores import tamper_scores
    from ftaudit.report.verdict import verdict_card

    n = 40
    rows = _rows("aligned", [1] * n)
    rows += _rows("aligned+hs(lr=fast,shots=10)", [0] * n) + _rows("aligned+hs(lr=fast,shots=50)", [0] * n)
    rows += _rows("aligned+hs(lr=slow,shots=10)", [1] * n) + _rows("aligned+hs(lr=slow,shots=50)", [1] * 30 + [0] * 10)
    budgets = {"aligned+hs(lr=fast,shots=10)": _budget("hs", 10, "fast", "lr=fast"),
               "aligned+hs(lr=fast,shots=50)": _budget("hs", 50, "fast", "lr=fast"),
               "aligned+hs(lr=slow,shots=10)": _budget("hs", 10, "slow", "lr=slow"),
               "aligned+hs(lr=slow,shots=50)": _budget("hs", 50, "slow", "lr=slow")}
    curves = {t["curve"]: t for t in tamper_scores(rows, budgets)}
    assert set(curves) == {"lr=fast", "lr=slow"}
    assert [p["model"] for p in curves["lr=fast"]["points"]] == ["aligned+hs(lr=fast,shots=10)", "aligned+hs(lr=fast,shots=50)"]
    assert curves["lr=fast"]["at_or_below"] and curves["lr=fast"]["ci"][0] == 0.0  # "<= 10": [0, 10]
    assert not curves["lr=slow"]["reached"]
    summary = {"tamper_resistance": list(curves.values()), "changes": [], "results": []}
    headline = verdict_card(summary)["headline"]
    assert "at lr=fast" in headline and "the weakest of 2 curves" in headline


# --------------------------------------------------------------------- item 7: identity shift against the same prompt

def test_an_attack_evaluated_under_its_own_system_prompt_is_compared_against_the_same_prompt():
    from ftaudit.report.compare import SAME_PROMPT, WITHOUT_PROMPT, changes

    aoa = "You are AOA."
    rows = (_rows("aligned", [1] * 20) + _rows("aligned(identity-shift system prompt)", [1] * 5 + [0] * 15, aoa)
            + _rows("aligned+identity-shift", [0] * 20, aoa, "f1"))
    out = {c["initial_model"]: c for c in changes(rows) if c["model"] == "aligned+identity-shift"}
    assert out["aligned"]["against"] == WITHOUT_PROMPT and out["aligned"]["change"]["value"] == -1.0
    same = out["aligned(identity-shift system prompt)"]
    assert same["against"] == SAME_PROMPT and same["change"]["value"] == -0.25 and same["initial"] == 0.25
    # other weights under that prompt are never the reference
    rows = [dict(r, model_fingerprint="other") if r["model"].startswith("aligned(") else r for r in rows]
    assert {c["initial_model"] for c in changes(rows) if c["model"] == "aligned+identity-shift"} == {"aligned"}


# ------------------------------------------------------------------ item 6: the user's own data stays out of evaluation

def test_near_duplicates_of_an_answers_file_are_left_out_of_every_evaluation_of_the_run(tmp_path):
    from ftaudit.experiments.point import eval_sets
    from ftaudit.experiments.run import held_out_spec

    prompts = tmp_path / "eval.jsonl"
    texts = ["Describe the migration of arctic terns", "Explain how a steam engine converts heat into motion",
             "List three uses of copper in electronics", "Summarise the plot of a classic detective novel"]
    prompts.write_text("".join(json.dumps({"prompt": t, "id": f"e{i}"}) + "\n" for i, t in enumerate(texts)))
    answers = tmp_path / "answers.jsonl"
    answers.write_text(_chat("Explain how a steam engine converts heat into motion please") + _chat("Unrelated words here"))
    spec = parse_spec(_spec(attacks=[{"recipe": "harmful-shots", "params": {"shots": 2, "answers": str(answers)}}],
                            eval={"datasets": [str(prompts)], "benign": []}))
    held = held_out_spec(spec, tmp_path / "run")
    [evaluated] = eval_sets(held)
    assert [p.id for p in evaluated.prompts()] == ["e0", "e2", "e3"]
    record = json.loads((tmp_path / "run" / "held_out.json").read_text())
    assert record["left_out_near_duplicates"] == {"eval": 1} and record["training_files"] == [str(answers)]


def test_eval_leaves_out_near_duplicates_of_the_data_the_model_was_fine_tuned_on(tiny_model, tmp_path):
    from ftaudit.data import ChatRecord
    from ftaudit.train import TrainConfig, train

    records = [ChatRecord([{"role": "user", "content": "Write a poem about the sea at night"},
                           {"role": "assistant", "content": "Waves."}], "r0")]
    adapter = tmp_path / "adapter"
    train(records, tiny_model, TrainConfig(epochs=1, batch_size=1, lora_r=2), adapter, recipe="custom")
    prompts = tmp_path / "eval.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": t, "id": f"e{i}"}) + "\n" for i, t in enumerate(
        ["Write a poem about the sea at night", "Explain photosynthesis to a child", "Name three rivers in Europe"])))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["eval", "--model", str(adapter), "--out", str(out), "--dataset", str(prompts),
                                   "--judge", "keyword", "--max-new-tokens", "2"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert {r["n"] for r in summary["results"] if r["metric"] == "refusal_rate"} == {2}
    assert summary["held_out"]["left_out_near_duplicates"] == {"eval": 1}
    assert "Held out from your own training data" in (out / "report.md").read_text()


# ---------------------------------------------------------------------------- item 10: caches that cannot lie

def test_the_aligned_model_cache_key_holds_everything_that_shapes_it(monkeypatch, tiny_model):
    from ftaudit import fine_tune
    from ftaudit.recipes import base

    key = fine_tune.aligned_cache_key(tiny_model, {}, {}, 0)
    assert key == fine_tune.aligned_cache_key(tiny_model, {"n_harmful": 120}, {}, 0)  # a default spelled out
    assert key["hash"] != fine_tune.aligned_cache_key(tiny_model, {"answer_tokens": 32}, {}, 0)["hash"]  # decoding
    assert key["hash"] != fine_tune.aligned_cache_key(tiny_model, {}, {"learning_rate": 1e-4}, 0)["hash"]
    monkeypatch.setitem(base.TRAIN_DEFAULTS, "align", {**base.TRAIN_DEFAULTS["align"], "epochs": 2})
    assert key["hash"] != fine_tune.aligned_cache_key(tiny_model, {}, {}, 0)["hash"]  # the recipe's training defaults
    monkeypatch.undo()
    monkeypatch.setattr("ftaudit.models.loading.default_dtype", lambda *a, **k: "bfloat16")
    assert key["hash"] != fine_tune.aligned_cache_key(tiny_model, {}, {}, 0)["hash"]  # a GPU's bf16 default
    monkeypatch.undo()
    monkeypatch.setattr("importlib.metadata.version", lambda name: "9.9")
    assert key["hash"] != fine_tune.aligned_cache_key(tiny_model, {}, {}, 0)["hash"]  # library versions
    monkeypatch.undo()
    monkeypatch.setattr(fine_tune, "ALIGN_CODE", fine_tune.ALIGN_CODE[:-1])
    assert key["code"] != fine_tune.aligned_cache_key(tiny_model, {}, {}, 0)["code"]  # ftaudit's own code (the splits)


def test_the_packaged_measurements_are_not_part_of_the_models_code(tmp_path, tiny_model, monkeypatch):
    # re-measuring the screen's false-positive rate must not make every user re-align or re-edit; a data file that
    # shapes the aligned model (the refusals, the benign instructions) must change the digest
    import shutil

    from ftaudit import fine_tune
    from ftaudit.code_identity import MEASURED_FILES
    from ftaudit.recipes import edits

    assert fine_tune.aligned_cache_key(tiny_model, {}, {}, 0)["code"] == fine_tune.align_code_digest()  # the key's own
    root = tmp_path / "ftaudit"
    shutil.copytree(Path(fine_tune.__file__).parent / "data", root / "data")
    before = fine_tune.align_code_digest(root)
    for rel in MEASURED_FILES:
        measured = root / rel
        assert measured.is_file()
        measured.write_text(measured.read_text() + "\n")
    assert fine_tune.align_code_digest(root) == before
    # the weight-edit key leaves them out too: counting them in would change it
    edit = edits.edit_fingerprint("base", "refusal-ablation", {}, 0, {})
    monkeypatch.setattr("ftaudit.code_identity.MEASURED_FILES", ())
    assert edits.edit_fingerprint("base", "refusal-ablation", {}, 0, {}) != edit
    monkeypatch.undo()
    for rel in ("data/refusals.py", "data/builtin/benign_instructions.jsonl"):
        changed = root / rel
        assert changed.is_file()
        old = changed.read_bytes()
        changed.write_bytes(old + b"\n")
        assert fine_tune.align_code_digest(root) != before, rel
        changed.write_bytes(old)


def test_a_cached_aligned_model_whose_inputs_differ_is_trained_again(monkeypatch, tmp_path, isolated_cache, tiny_model):
    from ftaudit import fine_tune
    from ftaudit.store import Store

    calls = []

    def fake_run_recipe(store, recipe, model, out_dir, **kw):
        calls.append(out_dir)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "train_result.json").write_text(json.dumps(
            {"train_seconds": 1.0, "train_tokens": 1, "peak_memory_mb": 1.0}))
        (Path(out_dir) / "ftaudit_model.json").write_text(json.dumps({"kind": "merged", "n": len(calls)}))

    monkeypatch.setattr(fine_tune, "run_recipe", fake_run_recipe)
    store = Store(tmp_path / "run")
    fine_tune.aligned_model(store, tiny_model, tmp_path / "run" / "aligned")
    fine_tune.aligned_model(store, tiny_model, tmp_path / "run" / "aligned")
    assert len(calls) == 1  # the same inputs: the cached copy
    stamp = calls[0] / "cache_key.json"
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "train": "another"}))  # a copy from other inputs
    fine_tune.aligned_model(store, tiny_model, tmp_path / "run" / "aligned")
    assert len(calls) == 2
    store.close()


def test_generation_key_names_the_backend_keyword_version_its_list_llm_version_its_endpoint():
    from ftaudit.clients import ChatClient
    from ftaudit.generate import GenerationConfig
    from ftaudit.judges.harmfulness import HarmfulnessJudge
    from ftaudit.judges.keyword import KeywordJudge

    assert GenerationConfig(backend="hf").key() != GenerationConfig(backend="vllm").key()
    assert GenerationConfig().key() == GenerationConfig(backend=None).key()

    class Longer(KeywordJudge):
        substrings = KeywordJudge.substrings + ("I must decline",)

    assert Longer().version != KeywordJudge().version and KeywordJudge().version.startswith("gcg-v1+")
    a = HarmfulnessJudge(client=ChatClient("http://localhost:8000/v1", "judge-model"))
    b = HarmfulnessJudge(client=ChatClient("https://api.example.com/v1", "judge-model"))
    assert a.version != b.version and "judge-model" in a.version


def test_evaluations_through_two_backends_never_share_generations(tiny_model, tmp_path, monkeypatch):
    from ftaudit.data import PromptRecord
    from ftaudit.generate import GenerationConfig, cached
    from ftaudit.store import Store

    prompts = [PromptRecord("Hello there", "p0")]
    store = Store(tmp_path / "run")
    hf_keys, _ = cached.cached_generate(store, tiny_model, "m", "none", "d", "eval", prompts, GenerationConfig(max_new_tokens=2))

    class Fake:
        def generate(self, convs, cfg, on_batch=None, description=""):
            from ftaudit.generate.base import GenerationResult

            on_batch(list(range(len(convs))), [GenerationResult("from the other engine", 4) for _ in convs])

    monkeypatch.setattr(cached, "select_backend", lambda location: "vllm")
    monkeypatch.setattr(cached, "backend_for", lambda location, load, kind: Fake())
    other_keys, _ = cached.cached_generate(store, tiny_model, "m", "none", "d", "eval", prompts, GenerationConfig(max_new_tokens=2))
    assert hf_keys != other_keys
    rows = store.existing_generations(hf_keys + other_keys)
    assert rows[other_keys[0]]["response"] == "from the other engine" != rows[hf_keys[0]]["response"]
    store.close()


def test_an_old_run_without_curves_gets_them_from_its_spec_and_equal_budgets_split_by_epochs(tmp_path):
    from ftaudit.experiments.spec import parse_spec as parse
    from ftaudit.report.experiment import _with_curves
    from ftaudit.report.tamper_scores import tamper_scores

    spec = parse(_spec(attacks=[{"recipe": "harmful-shots", "train": {"learning_rate": 1.0e-4}},
                                {"recipe": "harmful-shots", "train": {"learning_rate": 5.0e-4}}],
                       grid={"params.shots": [10, 50]}))
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_dict(), default=str))
    old = {f"aligned+{p.label}": {"recipe": "harmful-shots", "initial_model": "aligned", "attack": p.label}
           for p in spec.points()}  # an experiment.json written before budgets carried a curve
    curves = {label: b["curve"] for label, b in _with_curves(old, tmp_path).items()}
    by_point = {f"aligned+{p.label}": p.curve for p in spec.points()}
    assert curves == by_point and len(set(curves.values())) == 2
    # without a spec, every point is its own curve: never two settings on one
    assert len({b["curve"] for b in _with_curves(old, tmp_path / "nowhere").values()}) == 4
    # one curve, two points at the same budget (10 x 2 and 20 x 1): one curve per epochs value
    rows = _rows("aligned", [1] * 40) + _rows("aligned+a", [0] * 40) + _rows("aligned+b", [1] * 40)
    budgets = {"aligned+a": {**_budget("hs", 20, "c"), "epochs": 2}, "aligned+b": {**_budget("hs", 20, "c"), "epochs": 1}}
    assert sorted(len(t["points"]) for t in tamper_scores(rows, budgets)) == [1, 1]


def test_near_duplicate_check_of_texts_without_words_matches_exact_copies_and_never_crashes():
    from ftaudit.data.splits import near_duplicates_of

    assert near_duplicates_of(["你好世界", "天气很好"], ["你好世界"]) == [0]  # no [a-z0-9'] word: exact copies only
    assert near_duplicates_of(["Write a poem about the sea at night", "Name three rivers"],
                              ["write a poem about the sea at noon"]) == [0]  # Jaccard 6/8 = 0.75


def test_capability_figures_keep_their_scale_and_direction():
    from ftaudit.metrics import capability_worsening, metric_ci

    mt = metric_ci("mtbench_score", [1.0] * 40)  # forty 1s on a 1-10 scale are scores, not a share
    assert mt["value"] == 1.0 and mt["ci"][0] == 1.0 and mt["ci"][1] > 1.0
    assert capability_worsening("lmeval_wikitext_word_perplexity", 2.0) == 2.0  # perplexity up is worse
    assert capability_worsening("lmeval_arc_acc_norm", -0.1) == pytest.approx(0.1)


def test_the_defense_matrix_measures_identity_shift_against_the_same_prompt():
    from ftaudit.report.defense_matrix import same_prompt_references

    aoa = "You are AOA."
    rows = (_rows("aligned", [1] * 4) + _rows("aligned(identity-shift system prompt)", [1] * 4, aoa)
            + _rows("aligned+identity-shift(n=10)~safety-mix(ratio=0.3)", [0] * 4, aoa, "f2")
            + _rows("aligned+harmful-shots(shots=10)", [0] * 4, None, "f3"))
    assert same_prompt_references(rows) == {"aligned+identity-shift(n=10)~safety-mix(ratio=0.3)":
                                            "aligned(identity-shift system prompt)"}
