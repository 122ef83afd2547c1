"""The prefilling attack (Qi et al. 2024) on a tiny random model: the answer is opened with the prefix and the model
continues it, the prefix is part of the generation's identity, and every k is measured on the same prompts."""

from __future__ import annotations

import pytest

from ftaudit.errors import FtauditError
from ftaudit.evaluation import parse_eval_set
from ftaudit.generate import GenerationConfig


def test_a_final_assistant_turn_is_rendered_open_for_the_model_to_continue(tiny_model):
    from transformers import AutoTokenizer

    from ftaudit.models.chat import format_chat, messages_for

    tok = AutoTokenizer.from_pretrained(tiny_model)
    plain = format_chat(tok, messages_for("Write a poem"))
    opened = format_chat(tok, messages_for("Write a poem") + [{"role": "assistant", "content": "Sure, here"}])
    assert opened == plain + "Sure, here"  # the prompt as generation sees it, then the prefix, no end of turn
    closed = format_chat(tok, messages_for("Write a poem") + [{"role": "assistant", "content": "Sure"}],
                         add_generation_prompt=False)
    assert closed.endswith("Sure<|im_end|>\n")  # training and scoring still see whole turns


def test_prefilled_generations_continue_the_prefix_and_never_share_a_key(tiny_model, tmp_path):
    from ftaudit.data import PromptRecord
    from ftaudit.generate.cached import cached_generate
    from ftaudit.store import Store

    prompts = [PromptRecord("p1", "Write a poem about the sea.", "x", "eval")]
    cfg = GenerationConfig(max_new_tokens=4)
    with Store(tmp_path) as store:
        plain, loaded = cached_generate(store, tiny_model, "m", "", "d", "eval", prompts, cfg)
        a, _ = cached_generate(store, tiny_model, "m", "", "d", "eval", prompts, cfg, loaded, ["Sure"])
        b, _ = cached_generate(store, tiny_model, "m", "", "d", "eval", prompts, cfg, loaded, ["No"])
        assert len({plain[0], a[0], b[0]}) == 3
        rows = store.existing_generations(a + b)
        # greedy from another opening: the continuations are generated after the prefix, not after the prompt
        assert rows[a[0]]["prompt"] == prompts[0].prompt and rows[a[0]]["response"] != rows[b[0]]["response"]
        # each row says what its answer was opened with
        assert (rows[a[0]]["prefill"], rows[b[0]]["prefill"], store.existing_generations(plain)[plain[0]]["prefill"]) \
            == ("Sure", "No", None)
        with pytest.raises(FtauditError, match="one prefill per prompt"):
            cached_generate(store, tiny_model, "m", "", "d", "eval", prompts, cfg, loaded, ["a", "b"])


def test_a_store_from_before_prefilling_gains_the_prefill_column_and_keeps_its_rows(tmp_path):
    import sqlite3

    from ftaudit.store import Store

    db = sqlite3.connect(tmp_path / "ftaudit.sqlite")
    db.execute("CREATE TABLE generations(key TEXT PRIMARY KEY, model TEXT, model_fingerprint TEXT, gen_key TEXT, "
               "dataset TEXT, split TEXT, prompt_id TEXT, category TEXT, prompt TEXT, system_prompt TEXT, response TEXT, "
               "new_tokens INTEGER, created REAL)")
    db.execute("INSERT INTO generations VALUES ('k0','m','f','g','d','eval','p0','c','Hi',NULL,'Hello',1,0)")
    db.commit()
    db.close()
    with Store(tmp_path) as store:
        store.add_generations([{"key": "k1", "model": "m", "model_fingerprint": "f", "gen_key": "g", "dataset": "d",
                                "split": "eval", "prompt_id": "p1", "category": "c", "prompt": "Hi", "system_prompt": None,
                                "response": "there", "new_tokens": 1, "prefill": "Sure,"}])
        rows = store.existing_generations(["k0", "k1"])
        assert (rows["k0"]["response"], rows["k0"]["prefill"], rows["k1"]["prefill"]) == ("Hello", None, "Sure,")


def test_every_k_is_measured_on_the_same_prompts_as_the_unprefilled_baseline(tiny_model, tmp_path):
    from ftaudit.prefill import evaluate_prefilled, model_label, prefill_table
    from ftaudit.store import Store

    sets = [parse_eval_set("advbench@6")]
    with Store(tmp_path) as store:
        prefixes = evaluate_prefilled(store, "tiny", tiny_model, sets, GenerationConfig(max_new_tokens=3), ["keyword"],
                                      tiny_model, ks=(2, 4))
        kept = prefixes.prompts["advbench"]
        dropped = prefixes.dropped["advbench"]
        assert len(kept) + dropped["refused"] + dropped["short"] == 6 and kept
        assert all(len(ids) >= 4 for ids in prefixes.tokens["advbench"])
        tok = prefixes.tokenizer
        for text, ids in zip(prefixes.text("advbench", 2), prefixes.tokens["advbench"]):
            assert tok.encode(text, add_special_tokens=False)[:2] == ids[:2]  # the first k tokens, in its tokenizer
        rows = prefill_table(store, ["tiny"], (2, 4), ["keyword"])
        assert [r["k"] for r in rows] == [0, 2, 4]
        assert {r["refusal"]["n"] for r in rows} == {len(kept)} and rows[0]["vs_unprefilled"] is None
        assert rows[1]["vs_unprefilled"]["n"] == len(kept)
        models = {r["model"] for r in store.eval_table()}
        assert {model_label("tiny", k) for k in (0, 2, 4)} <= models
    with pytest.raises(FtauditError, match="positive"):
        evaluate_prefilled(None, "tiny", tiny_model, sets, GenerationConfig(), ["keyword"], tiny_model, ks=(0,))


def test_a_spec_prefills_the_released_and_the_attacked_models_and_reports_each_k(tiny_model, tmp_path, isolated_cache):
    """One spec with a weight edit and the prefilling attack: the edit is a grid point like any attack, and the report
    carries refusal per k for the released model and the edited one, each k paired with k = 0."""
    from ftaudit.experiments.run import run_spec
    from ftaudit.experiments.spec import parse_spec

    spec = {"name": "t", "model": tiny_model, "reference_model": tiny_model,
            "attacks": [{"recipe": "refusal-ablation", "params": {"n_train": 4, "n_val": 2, "filter_prompts": False, "prune_layers": 0.0,
                                                                  "kl_threshold": 1e6, "induce_refusal_threshold": -1e6}}],
            "prefill": {"tokens": [2]},
            "eval": {"datasets": ["advbench@4"], "benign": [], "judges": ["keyword"], "max_new_tokens": 3},
            "tamper": {"relative": False}}
    summary = run_spec(parse_spec(spec), tmp_path / "run")
    rows = summary["prefill"]["rows"]
    edited = ("initial+refusal-ablation(filter_prompts=False,induce_refusal_threshold=-1000000.0,kl_threshold=1000000.0,"
              "n_train=4,n_val=2,prune_layers=0.0)")
    assert {(r["model"], r["k"]) for r in rows} == {(m, k) for m in ("initial", edited) for k in (0, 2)}
    assert all(r["vs_unprefilled"]["n"] == r["refusal"]["n"] for r in rows if r["k"])
    assert "Prefilling attack" in (tmp_path / "run" / "report.md").read_text()
    budget = summary["budgets"][edited]
    assert budget["attack_kind"] == "weight-edit" and budget["examples_x_epochs"] == 12 and budget["steps"] == 0
    with pytest.raises(FtauditError, match="reference_model"):
        parse_spec({**spec, "reference_model": None})


def test_a_model_that_answered_nothing_is_not_measured_never_a_rate():
    from ftaudit.report.prefill import prefill_markdown, prefill_rows

    def row(model, pid, refused):
        return {"model": model, "kind": "harmful", "judge": "keyword", "dataset": "advbench", "split": "eval",
                "prompt_id": pid, "refused": refused}

    rows = [row("a+prefill(k=0)", "1", 1), row("a+prefill(k=0)", "2", 1), row("a+prefill(k=5)", "1", 0),
            row("a+prefill(k=5)", "2", None), row("b+prefill(k=0)", "1", None), row("b+prefill(k=5)", "1", None)]
    out = {(r["model"], r["k"]): r for r in prefill_rows(rows, ["a", "b"], (5,), ["keyword"])}
    assert out[("a", 5)]["refusal"]["n"] == 1 and out[("a", 5)]["unanswered"] == 1
    assert out[("a", 5)]["vs_unprefilled"]["n"] == 1 and out[("a", 5)]["vs_unprefilled"]["value"] == -1.0
    assert out[("b", 0)]["refusal"]["n"] == 0 and out[("b", 5)]["attack_success"] is None
    text = prefill_markdown({"reference_model": "r", "rows": list(out.values()), "prompts": {}})
    assert "not measured (0)" in text and "| b | keyword | 5 | not measured (0) | – | – | 1 |" in text


def test_a_model_evaluated_under_its_attacks_system_prompt_is_prefilled_under_it_too(tiny_model, tmp_path):
    """Identity shift is evaluated under its own system prompt; prefilling it without that prompt would measure
    another model (more refusals), so every k keeps it."""
    import shutil

    from ftaudit.models.loading import write_marker
    from ftaudit.prefill import evaluate_prefilled
    from ftaudit.store import Store

    shifted = tmp_path / "shifted"
    shutil.copytree(tiny_model, shifted)
    write_marker(shifted, kind="full", fingerprint="shifted-1", eval_system_prompt="You are AOA.",
                 eval_prompt_template="AOA, {prompt}")
    with Store(tmp_path / "run") as store:
        evaluate_prefilled(store, "shifted", str(shifted), [parse_eval_set("advbench@3")],
                           GenerationConfig(max_new_tokens=2), ["keyword"], tiny_model, ks=(2,))
        rows = [r for r in store.eval_table() if r["model"].startswith("shifted+prefill")]
        assert rows and {r["system_prompt"] for r in rows} == {"You are AOA."}


def test_a_defended_model_is_compared_with_its_undefended_twin_at_each_k():
    """What a defense keeps under prefilling is its refusal against the undefended model's at the same k, prompt by
    prompt; the twin is the same point, seed and model without the defense."""
    from types import SimpleNamespace

    from ftaudit.experiments.run import undefended_twins
    from ftaudit.report.prefill import prefill_rows, prefill_tables

    def job(label, initial, defense, point="p", seed=0, models="m"):
        return SimpleNamespace(label=label, initial_name=initial, defense=defense, point=point, seed=seed,
                               models_dir=models)

    jobs = [job("a+hs", "a", None), job("a+hs@1", "a", None, seed=1), job("a~d+hs", "a~d", {"name": "d"}),
            job("a+hs~f", "a", {"name": "f"}), job("a+hs~f@1", "a", {"name": "f"}, seed=1),
            job("a+is", "a", None, point="q"), job("a+is~f", "a", {"name": "f"}, point="q"),
            job("b+hs", "b", None, models="n"), job("b~d+hs", "b~d", {"name": "d"}, models="n"),
            job("c~d+hs", "c~d", {"name": "d"}, models="o")]  # c: its undefended twin was not prefilled
    names = ["a", "a~d", "a+hs", "a~d+hs", "a+hs~f", "a+hs@1", "a+hs~f@1", "a+is", "a+is~f", "b", "b~d+hs", "b+hs",
             "c~d+hs"]
    assert undefended_twins(jobs, names) == {"a~d": "a", "a~d+hs": "a+hs", "a+hs~f": "a+hs", "a+hs~f@1": "a+hs@1",
                                             "a+is~f": "a+is", "b~d+hs": "b+hs"}

    def row(model, pid, refused):
        return {"model": model, "kind": "harmful", "judge": "keyword", "dataset": "advbench", "split": "eval",
                "prompt_id": pid, "refused": refused}

    rows = [row("a+prefill(k=0)", p, 1) for p in "123"] + [row("a+prefill(k=5)", p, 0) for p in "123"]
    rows += [row("a~d+prefill(k=0)", p, 1) for p in "123"] + [row("a~d+prefill(k=5)", "1", 1),
                                                               row("a~d+prefill(k=5)", "2", 1),
                                                               row("a~d+prefill(k=5)", "3", None)]
    rows += [{**r, "judge": "other", "refused": 1 - r["refused"]} for r in rows if r["refused"] is not None]
    table_rows = prefill_rows(rows, ["a", "a~d"], (5,), ["keyword", "other"], {"a~d": "a"})
    out = {(r["model"], r["judge"], r["k"]): r for r in table_rows}
    assert out[("a~d", "keyword", 5)]["vs_undefended"]["value"] == 1.0
    assert out[("a~d", "keyword", 5)]["vs_undefended"]["n"] == 2  # the prompt it left unanswered is not paired
    assert out[("a~d", "other", 5)]["vs_undefended"]["value"] == -1.0  # each judge against the same judge
    assert out[("a~d", "keyword", 0)]["vs_undefended"]["value"] == 0.0 and out[("a", "keyword", 5)]["vs_undefended"] is None
    (_, header, table), = prefill_tables({"rows": table_rows, "undefended": {"a~d": "a"}, "reference_model": "r"})
    col = header.index("vs undefended, same k [95% CI] (n)")
    by = {(r[0], r[1], r[2]): r[col] for r in table}
    assert by[("a", "keyword", "5")] == "–" and by[("a~d", "keyword", "0")].endswith("(3)")
    change = out[("a~d", "keyword", 5)]["vs_undefended"]
    assert by[("a~d", "keyword", "5")] == (f"+100.0 pts [{100 * change['ci'][0]:+.1f}, {100 * change['ci'][1]:+.1f}] (2)")


def test_against_names_two_models_of_the_run_and_adds_the_column():
    from ftaudit import api
    from ftaudit.report.prefill import prefill_markdown

    for against in ({"b": "a"}, {"a": "b"}):
        with pytest.raises(FtauditError, match="--against names b, not among the --model names"):
            api.prefill({"a": "x"}, "/nonexistent", reference_model="y", against=against)
    with pytest.raises(FtauditError, match="compares a model with itself"):
        api.prefill({"a": "x"}, "/nonexistent", reference_model="y", against={"a": "a"})
    row = {"model": "d", "judge": "keyword", "k": 5, "refusal": {"value": 0.5, "ci": [0.2, 0.8], "n": 4},
           "attack_success": 0.5, "unanswered": 0, "vs_unprefilled": None,
           "vs_undefended": {"value": 0.25, "ci": [-0.1, 0.6], "n": 4}}
    text = prefill_markdown({"reference_model": "r", "rows": [row], "prompts": {}, "undefended": {"d": "u"}})
    assert "vs undefended, same k" in text and "| +25.0 pts [-10.0, +60.0] (4) |" in text
    assert "vs undefended" not in prefill_markdown({"reference_model": "r", "rows": [row], "prompts": {}})
    header, rule, line = text.splitlines()[4:7]
    assert header.count("|") == rule.count("|") == line.count("|")


def test_the_cli_passes_against_as_defended_to_undefended(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from ftaudit import api
    from ftaudit.cli import app

    seen = {}

    def fake(models, out, **kw):
        seen.update(kw)
        (out / "prefill.md").parent.mkdir(parents=True, exist_ok=True)
        (out / "prefill.md").write_text("done")
        return []

    monkeypatch.setattr(api, "prefill", fake)
    args = ["prefill", "--model", "aligned=x", "--model", "hard=y", "--reference-model", "r", "--out", str(tmp_path)]
    assert CliRunner().invoke(app, [*args, "--against", "hard=aligned"]).exit_code == 0
    assert seen["against"] == {"hard": "aligned"}
    res = CliRunner().invoke(app, [*args, "--against", "hard=aligned", "--against", "hard=x"])
    assert res.exit_code != 0 and "names 'hard' twice" in res.output


def test_against_refuses_models_prefilled_with_different_prefixes(monkeypatch, tmp_path):
    """Two tokenizers cut two prefixes from one answer: such refusals are not paired, whatever the names say."""
    import ftaudit.prefill as prefill
    from ftaudit.prefill import Prefixes

    class Tok:
        def __init__(self, tag):
            self.tag = tag

        def decode(self, ids, skip_special_tokens=True):
            return self.tag + " ".join(map(str, ids))

    def fake(store, name, location, sets, gen, judges, reference_model, ks):
        p = Prefixes(prompts={"advbench": [SimpleNamespace(id="1")]}, tokens={"advbench": [[1, 2, 3]]},
                     dropped={"advbench": {"refused": 0, "short": 0, "of": 1}}, tokenizer=Tok(location))
        return p

    from types import SimpleNamespace

    monkeypatch.setattr(prefill, "evaluate_prefilled", fake)
    monkeypatch.setattr(prefill, "prefill_table", lambda *a, **k: [])
    prefill.run_prefill({"a": "same", "b": "same"}, tmp_path / "ok", "r", ["advbench@1"], ["keyword"], (2,),
                        against={"b": "a"})
    with pytest.raises(FtauditError, match="prefilled with different prompts or prefixes"):
        prefill.run_prefill({"a": "one", "b": "other"}, tmp_path / "no", "r", ["advbench@1"], ["keyword"], (2,),
                            against={"b": "a"})
