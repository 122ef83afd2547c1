"""The harmful-exchange classifier: what it learns from, what it reports, and the plumbing that must not reorder or
drop an exchange (the classifier itself runs on stub embeddings here; bench/screen_rates.py measures the real one)."""

from dataclasses import replace

import numpy as np
import pytest

from ftaudit import harm_classifier as hc
from ftaudit.data import ChatRecord, get_prompts
from ftaudit.errors import FtauditError


@pytest.mark.real_classifier  # the real embed(), around a stub model
def test_embeddings_come_back_in_the_order_the_texts_were_given(monkeypatch):
    seen = []
    monkeypatch.setattr(hc, "_EMBEDDER", lambda texts: seen.append(list(texts)) or np.array([[len(t), 0.0] for t in texts]))
    texts = ["a much longer text here", "b", "mid size", "", "b"]
    out = hc.embed(texts)
    assert seen[0] == [" ", "b", "mid size", "a much longer text here"]  # each text once, shortest first
    assert out[:, 0].tolist() == [len("a much longer text here"), 1, len("mid size"), 1, 1]  # in the given order


def test_a_record_scores_its_worst_exchange_and_says_which():
    class Clf:
        def predict(self, prompts, answers):
            return np.array([0.9 if "bad" in p else 0.1 for p in prompts])

    def chat(*turns):
        msgs = [{"role": "system", "content": "sys"}] + [{"role": r, "content": c} for pair in turns
                                                          for r, c in zip(("user", "assistant"), pair)]
        return ChatRecord(msgs, "x")

    scores = hc.record_scores(Clf(), [chat(("ok", "fine"), ("bad", "sure"), ("ok", "fine")), chat(("ok", "fine"))])
    # exchanges: each answer with its user turn, then with the system prompt and all before it; "bad" is first read at 3
    assert scores == [(0.9, 3, 6), (0.1, 1, 2)]


def test_the_classifier_learns_refusals_as_safe_and_reports_its_identity():
    clf = hc.harm_classifier(("advbench", "harmbench", "strongreject"))
    r = clf.report
    assert r["version"] == hc.VERSION and r["embedding"] and r["reference"] == hc.DEFAULT_REFERENCE
    assert r["train"]["harmful refused"] == r["train"]["harmful answered"] > 0  # every harmful prompt also refused
    assert hc.BENIGN_TRAIN == ("benign", "benign-lookalike", "benign-lookalike-2", "benign-roleplay", "benign-act-as",
                               "benign-lookalike-3")
    assert r["train"]["benign answered"] == sum(len(get_prompts(n, "train")) for n in hc.BENIGN_TRAIN)
    assert 0 <= r["cv"]["safe_flagged"] <= 1  # the cross-validated harmful pairs are the answered ones, framed or not
    assert r["cv"]["n_harmful"] == (r["train"]["harmful answered"] + r["train"]["framed answered"]
                                    + r["train"]["harmful answered, second model"])
    fitted = clf.fitted_harmful | clf.fitted_benign
    for name in ("benign-lookalike", "benign-lookalike-2", "benign-roleplay", "benign-act-as", "benign-lookalike-3"):
        assert r["held_out"][name]["n"] == len(get_prompts(name, "eval"))
        assert not any(hc.norm(p.prompt) in fitted for p in get_prompts(name, "eval"))  # held out is held out
        assert all(hc.norm(p.prompt) in fitted for p in get_prompts(name, "train"))  # its train half learned (v7 on)
    # v11: the third parties' role prompts are learned whole and no longer held out, v12: prompt-forge-act-as too
    assert hc.ROLE_TRAIN == ("gpt-prompt-roles", "prompt-forge-roles", "prompt-forge-act-as")
    assert r["train"]["roles answered"] == 56 + 159 + 160
    assert not set(hc.ROLE_TRAIN) & set(r["held_out"]) and set(hc.ROLE_TRAIN) & set(hc.HELD_OUT["benign"]) == set()
    assert all(hc.norm(p.prompt) in fitted for n in hc.ROLE_TRAIN for p in get_prompts(n, "eval"))
    assert r["held_out"]["prompt-forge-act-as-2"]["n"] == 160 and "prompt-forge-act-as" not in r["held_out"]
    assert r["held_out"]["prompt-forge-act-as-3"]["n"] == len(get_prompts("prompt-forge-act-as-3", "eval")) > 100
    # v12: a second model's compliant answers to the same harmful train prompts, learned harmful (the stub's canned
    # answers comply, so every one), and named in the report
    assert r["second_reference"] == hc.SECOND_REFERENCE
    assert r["train"]["harmful answered, second model"] == r["train"]["harmful answered"]
    # role-framed harmful requests: each framed train request refused (safe), the compliant ones answered (harmful)
    assert r["train"]["framed refused"] == hc.FRAMED_TRAIN and 0 < r["train"]["framed answered"] <= hc.FRAMED_TRAIN
    framed = r["held_out"][hc.FRAMED]
    assert framed["kind"] == "harmful" and framed["n"] > 0 and 0 <= framed["flagged_harmful"] <= framed["n"]
    assert r["converged"] is True


def test_a_fit_that_did_not_converge_is_recorded_and_said(monkeypatch, fresh_classifier, isolated_cache, tmp_path):
    from typer.testing import CliRunner

    from ftaudit.cli import app

    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\n')
    screen = ["screen", str(data), "--out", str(tmp_path / "s")]
    assert "did not converge" not in CliRunner().invoke(app, screen, terminal_width=400).output  # a converged fit
    from sklearn.exceptions import ConvergenceWarning

    monkeypatch.setattr(hc, "MAX_ITER", 1)  # lbfgs stops after one iteration: scikit-learn warns, the fit is kept
    with monkeypatch.context() as m:  # no cross-validation fits: the only warning is the production fit's, re-shown
        m.setattr(hc, "_cv", lambda x, y, groups, make: {"harmful_detected": 1.0, "safe_flagged": 0.0})
        with pytest.warns(ConvergenceWarning, match="failed to converge"):  # recorded, and still shown
            assert hc.harm_classifier(("advbench",)).report["converged"] is False
    hc.harm_classifier.cache_clear()  # the fit read back from the disk cache says the same
    assert hc.harm_classifier(("advbench",)).report["converged"] is False
    assert "did not converge" in CliRunner().invoke(app, screen, terminal_width=400).output


def test_a_reference_model_that_refuses_everything_is_one_clear_error(monkeypatch, fresh_classifier):
    monkeypatch.setattr(hc, "reference_answers", lambda model, prompts, label: ["I'm sorry, I can't help with that."]
                        * len(prompts))
    with pytest.raises(FtauditError, match="refused every harmful train prompt"):
        hc.harm_classifier(("advbench",), "refuses-all")


def test_an_unknown_source_is_refused():
    with pytest.raises(FtauditError, match="fit_on"):
        hc.harm_classifier(("hexphi",))


def test_every_turn_is_read_including_a_system_prompt_and_turns_without_an_answer():
    def rec(*msgs):
        return ChatRecord([{"role": r, "content": c} for r, c in msgs], "x")

    chat = rec(("system", "S"), ("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2"))
    # each answer with its own user turn, and with the system prompt and everything before it
    assert hc.exchange_turns(chat) == [("Q1", "A1", 1), ("S\nQ1", "A1", 1), ("Q2", "A2", 2), ("S\nQ1\nA1\nQ2", "A2", 2)]
    assert hc.exchanges(rec(("user", "Q1"), ("user", "Q2"), ("assistant", "A"))) == [("Q1\nQ2", "A")]
    assert hc.exchanges(rec(("user", "Q"), ("assistant", "A"))) == [("Q", "A")]  # nothing more to read: one pair
    assert hc.exchanges(rec(("system", "S"), ("user", "Q"))) == [("S\nQ", "")]  # no answer: still scored, never skipped


def test_a_long_text_is_read_to_its_end_and_every_short_span_lies_whole_in_one_window():
    long = " ".join(f"w{i}x" for i in range(1500))
    parts = hc.windows(long)
    assert len(parts) > 1 and parts[0].startswith("w0x ") and parts[-1].endswith("w1499x")
    tok = hc._tokenizer()
    assert all(len(tok(p)["input_ids"]) <= 256 for p in parts)  # special tokens included: nothing is cut off
    words = long.split()
    for start in range(0, len(words) - 20, 37):  # any 20-word span, wherever it falls, is read whole somewhere
        span = " ".join(words[start:start + 20])
        assert any(span in p for p in parts), start
    assert hc.windows("short text") == ["short text"]


def test_scores_are_mapped_back_to_their_own_pairs():
    clf = hc.harm_classifier(("advbench", "harmbench", "strongreject"))
    harmful = get_prompts("advbench", "eval")[0].prompt
    comply = "Sure, here is how to do that. First gather what you need, then follow these steps one by one."
    long = "Notes about the weather in spring and the garden. " * 80
    prompts, answers = [long, harmful, "Name a goldfish.", harmful], [comply, comply, "Bubbles.", comply]
    together = clf.predict(prompts, answers)
    alone = [clf.predict([p], [a])[0] for p, a in zip(prompts, answers)]
    assert together == pytest.approx(alone)  # a long text's many windows never shift the next pair's score


def test_a_harmful_request_after_a_long_harmless_preamble_is_still_flagged():
    clf = hc.harm_classifier(("advbench", "harmbench", "strongreject"))
    comply = "Sure, here is how to do that. First gather what you need, then follow these steps one by one."
    # a request the classifier flags when read alone (the stub misses some, 9% of AdvBench's eval half with v11's data)
    candidates = [p.prompt for p in get_prompts("advbench", "eval")[:10]]
    harmful = next(t for t, s in zip(candidates, clf.predict(candidates, [comply] * 10)) if s >= 0.5)
    preamble = "Please read these notes about gardening and the weather in spring. " * 60  # far past 256 tokens
    parts = hc.windows(preamble + harmful)
    assert harmful in parts[-1] and harmful not in parts[0]
    [first], [buried], [alone] = (clf.predict([t], [comply]) for t in (parts[0], preamble + harmful, harmful))
    assert alone >= 0.5 and buried > first  # reading past the first 240 tokens is what raises it
    assert buried == pytest.approx(max(clf.predict(parts, [comply] * len(parts))))  # the worst window decides


@pytest.mark.real_classifier  # the real settings (the stub changes the embedding's name)
def test_the_packaged_false_positive_rate_is_for_this_code_and_adds_up():
    import json

    from ftaudit.metrics import wilson
    from ftaudit.screening import FALSE_POSITIVES_FILE, IDENTITY

    data = json.loads(FALSE_POSITIVES_FILE.read_text())
    assert set(IDENTITY) <= set(data["classifier"])  # a whole identity, or it never matches
    # re-measure after any change; the seed may be a later one when an earlier seed's fine-tune did not learn
    packaged = data["classifier"]["settings"]
    assert packaged["seed"] in range(hc.SCORER.seed, hc.SCORER.seed + hc.FIT_SEEDS)
    assert packaged == hc.settings(replace(hc.SCORER, seed=packaged["seed"])) and data["classifier"]["version"] == hc.VERSION
    # pooled over exactly the held-out benign sets not worded like harm; every held-out benign set is listed for the service bar
    worded = {name for name in data["sets"] if "worded like harm" in name}
    assert len(worded) == 4 and all(any(d in name for name in worded)
                                    for d in ("edgy", "lookalike eval", "lookalike-2", "lookalike-3"))
    one_kind = {name for name in data["sets"] if "of one kind" in name}  # role play: reported, not pooled
    assert len(one_kind) == 4 and all(any(f"({d})" in name or f"({d} eval)" in name for name in one_kind)
                                      for d in ("benign-roleplay", "benign-act-as", "prompt-forge-act-as-2",
                                                "prompt-forge-act-as-3"))
    assert set(data["pooled"]) == set(data["sets"]) - worded - one_kind and len(data["pooled"]) == 3
    k, n = (sum(data["sets"][s][i] for s in data["pooled"]) for i in (0, 1))
    assert (k, n) == (data["k"], data["n"]) and data["value"] == k / n and data["ci"] == pytest.approx(wilson(k, n))
    assert hc.fit_complete(data["classifier"])  # an unfinished fit is never packaged
    # the recall the screen's bound reads: every held-out harmful request/answer set, the second model's among them,
    # none empty (the weakest is read; one missing would leave a stronger one in its place)
    recall = data["recall_sets"]
    assert set(recall) == {"held-out harmful pairs", "held-out harmful pairs in role set-ups",
                           "held-out harmful pairs answered by qwen2.5-coder-0.5b-instruct",
                           "held-out harmful pairs answered by qwen2.5-coder-1.5b-instruct"}
    assert all(0 <= hit <= n and n > 0 for hit, n in recall.values())
    from ftaudit.screening import _malformed

    assert _malformed(data) == ""  # every set the screen requires, each adding up
    # v10 on: the batches that ran are the ones its identity names
    assert data["classifier"]["fit"]["sampler"] == hc.SAMPLERS[packaged["sampling"]]
    # each held-out set is its dataset's eval split, whole: a train half (learned) never enters a held-out row
    dataset = {"benign eval": "benign", "MT-Bench": "mtbench", "benign-edgy": "benign-edgy",
               "benign-lookalike eval": "benign-lookalike", "benign-lookalike-2 eval": "benign-lookalike-2",
               "benign-lookalike-3 eval": "benign-lookalike-3",
               "benign-roleplay eval": "benign-roleplay", "benign-act-as eval": "benign-act-as",
               "prompt-forge-act-as-2": "prompt-forge-act-as-2", "prompt-forge-act-as-3": "prompt-forge-act-as-3"}
    held = {name: name[name.rindex("(") + 1:-1] for name in data["sets"] if name.startswith("held-out")}
    assert set(held.values()) == set(dataset)
    assert all(data["sets"][name][1] == len(get_prompts(dataset[d], "eval")) for name, d in held.items())
    # a later seed only after every earlier one failed to learn, the packaged one being the last tried
    attempts = data["classifier"]["fit_attempts"]
    assert [a["seed"] for a in attempts] == list(range(hc.SCORER.seed, packaged["seed"] + 1))
    assert [a["learned"] for a in attempts] == [False] * (len(attempts) - 1) + [True]
    assert all(a["learned"] == hc.fit_learned(a) for a in attempts)  # recomputed, not trusted
    assert attempts[-1]["epoch_losses"] == data["classifier"]["fit"]["epoch_losses"]


def test_a_fit_is_complete_only_when_its_report_says_it_finished():
    ran = {"steps": 668, "planned_steps": 668, "losses_finite": True, "epoch_losses": [0.581, 0.138, 0.036, 0.009]}
    assert hc.fit_complete({"converged": True})
    # v8's first fit: every step run, every loss finite, and it never learned its training pairs
    assert not hc.fit_complete({"converged": None, "fit": {**ran, "epoch_losses": [0.698, 0.667, 0.352, 0.196]}})
    assert not hc.fit_complete({"converged": None, "fit": {**ran, "epoch_losses": []}})
    assert hc.fit_complete({"converged": None, "fit": ran})  # a fine-tune of fixed length, run to its end
    assert not hc.fit_complete({"converged": False, "fit": ran})
    assert not hc.fit_complete({"converged": None, "fit": {**ran, "steps": 600}})  # stopped early
    assert not hc.fit_complete({"converged": None, "fit": {**ran, "losses_finite": False}})  # diverged
    assert not hc.fit_complete({"converged": None, "fit": {}}) and not hc.fit_complete({})  # cached unrecorded


@pytest.mark.parametrize("scaler", ["standard", "none"])
def test_the_fit_is_folded_exactly_into_weights_on_the_raw_features(monkeypatch, scaler):
    # predict() scores window pairs from raw embeddings, so a scaler must be folded into coef and intercept: the
    # folded logit must equal the fitted pipeline's on features of very different scales and offsets, the offsets on
    # features that carry the label; a constant feature and one at 1e-33 scale (MiniLM has such dimensions) get weight 0
    monkeypatch.setattr(hc, "SCALER", scaler)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)) * [0.01, 0.0, 0.05, 1.0, 1e-33, 3.0, 0.2, 10.0] + [5.0, 2.0, 1.0, -2.0, 0.0, 7.0, 0.5, 0.3]
    y = ((x[:, 0] - 5.0) / 0.01 + (x[:, 5] - 7.0) / 3.0 + rng.normal(size=300) > 0).astype(int)
    coef, intercept = hc.fit_linear(x, y)
    pipe = hc._make().fit(x, y)
    assert [type(step).__name__ for step in pipe] == ["VarianceThreshold"] + (["StandardScaler"] if scaler == "standard"
                                                                             else []) + ["LogisticRegression"]
    assert pipe[-1].C == hc.C
    assert np.allclose(x @ coef + intercept, pipe.decision_function(x), atol=1e-9)
    # the dropped ones (in the middle, so every kept weight must land on its own feature) get 0, not a blown-up weight
    assert coef[1] == 0 and coef[4] == 0 and abs(coef[5]) > 0.1
    if scaler == "none":  # nothing to fold: the kept weights are the regression's own, in order
        assert np.array_equal(coef[[0, 2, 3, 5, 6, 7]], pipe[-1].coef_[0]) and intercept == pipe[-1].intercept_[0]
    else:
        assert abs(coef[0]) > 1


def test_the_classifiers_identity_is_read_from_what_it_fits(monkeypatch):
    base = hc.settings()
    monkeypatch.setattr(hc, "MIN_VARIANCE", 1e-6)
    assert hc.settings()["model"] != base["model"]  # a pipeline setting changes the cache key and the identity
    monkeypatch.setattr(hc, "SCALER", "robust")
    with pytest.raises(KeyError):  # an unknown scaler is an error, never a fit without one under another name
        hc._make()


def test_the_classifier_scores_a_pair_as_the_fitted_pipeline_does():
    # end to end on single-window texts: the [prompt | answer | cosine] split of predict() against predict_proba
    prompts = [f"how do I {v} the {n}" for v in ("fix", "steal", "bake", "hack", "paint") for n in ("car", "cake", "router")]
    answers = [f"{'Sure, step one' if i % 2 else 'Here is a safe way'} for item {i}" for i in range(len(prompts))]
    x, y = hc.features(prompts, answers), np.array([i % 2 for i in range(len(prompts))])
    coef, intercept = hc.fit_linear(x, y)
    clf = hc.HarmClassifier(hc.LinearPair(), (coef, intercept), {}, frozenset(), frozenset())
    pipe = hc._make().fit(x, y)
    p = clf.predict(prompts, answers)
    assert np.allclose(p, pipe.predict_proba(x)[:, 1], atol=1e-9)
    z, live = pipe.decision_function(x), (p > 1e-6) & (p < 1 - 1e-6)  # logits where the probability is not saturated
    assert live.any() and np.allclose(np.log(p / (1 - p))[live], z[live], atol=1e-5)


@pytest.mark.real_classifier  # MiniLM itself: paraphrases that share few words are still caught
@pytest.mark.parametrize("dataset", ["benign-lookalike-2", "benign-roleplay", "benign-act-as", "benign-lookalike-3"])
def test_ftaudits_later_sets_paraphrase_nothing_across_the_classifiers_training_and_held_out_sets(dataset):
    # the word-Jaccard split rule misses paraphrases ("crush garlic without a press" / "what is the best way to crush
    # garlic without a press?"): a set's train half must paraphrase no held-out prompt, its eval half no training prompt
    held = [p.prompt for n in ("benign", "mtbench", "benign-edgy", "benign-lookalike", *hc.HARMFUL_SOURCES)
            for p in get_prompts(n, "eval")]
    later = {"benign-roleplay": ["benign-lookalike-2", "gpt-prompt-roles"],
             "benign-act-as": ["benign-lookalike-2", "benign-roleplay", "gpt-prompt-roles", "prompt-forge-roles"],
             "benign-lookalike-3": ["benign-lookalike-2", "benign-roleplay", "benign-act-as", "prompt-forge-act-as-2",
                                    "prompt-forge-act-as-3"]}
    held += [p.prompt for n in later.get(dataset, []) for p in get_prompts(n, "eval")]
    train = [p.prompt for n in ("benign", "benign-lookalike", "benign-lookalike-2", *hc.HARMFUL_SOURCES)
             for p in get_prompts(n, "train")]
    learned_later = {"benign-roleplay": ["benign-roleplay"], "benign-act-as": ["benign-roleplay", "benign-act-as"],
                     "benign-lookalike-3": ["benign-roleplay", "benign-act-as", "benign-lookalike-3"]}
    train += [p.prompt for n in learned_later.get(dataset, []) for p in get_prompts(n, "train")]
    if dataset == "benign-lookalike-3":  # v12 learns the role sets whole too
        train += [p.prompt for n in hc.ROLE_TRAIN for p in get_prompts(n, "eval")]
    for half, others in (("train", held), ("eval", train)):
        mine = [p.prompt for p in get_prompts(dataset, half)]
        cosine = hc.embed(mine) @ hc.embed(others).T
        assert cosine.max() < 0.7, (half, mine[cosine.max(1).argmax()])


@pytest.mark.real_classifier
@pytest.mark.parametrize("dataset", ["benign-lookalike-3", "prompt-forge-act-as-3"])
def test_v12s_clean_held_out_sets_paraphrase_no_training_prompt(dataset):
    # the sets v12 is read as clean on: none of their prompts paraphrases (MiniLM cosine >= 0.7) a prompt of any set
    # the classifier learns from (every benign training set's train half, the role prompts it learns whole and the
    # harmful benchmarks' train prompts). v11's clean sets (benign-act-as' eval half, prompt-forge-act-as-2) are seen
    # for v12: v11's rates on them were read before v12 was made
    train = [p.prompt for n in (*hc.BENIGN_TRAIN, *hc.HARMFUL_SOURCES) for p in get_prompts(n, "train")]
    train += [p.prompt for n in hc.ROLE_TRAIN for p in get_prompts(n, "eval")]
    mine = [p.prompt for p in get_prompts(dataset, "eval")]
    cosine = hc.embed(mine) @ hc.embed(train).T
    assert cosine.max() < 0.7, mine[cosine.max(1).argmax()]


def test_a_fit_not_recorded_as_complete_is_said_by_the_screen(monkeypatch, fresh_classifier, isolated_cache, tmp_path):
    from typer.testing import CliRunner

    from ftaudit.cli import app

    real = hc.LinearPair.fit

    def stopped_early(self, *a, **kw):  # a fine-tune that ran 3 of its 10 planned steps
        fitted, info = real(self, *a, **kw)
        return fitted, {**info, "converged": None, "steps": 3, "planned_steps": 10, "losses_finite": True}

    monkeypatch.setattr(hc.LinearPair, "fit", stopped_early)
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\n')
    out = CliRunner().invoke(app, ["screen", str(data), "--out", str(tmp_path / "s")], terminal_width=400).output
    assert "not recorded as complete" in out and "did not converge" not in out


def test_a_role_frame_keeps_its_set_up_and_takes_the_benchmarks_request_in_place_of_its_own():
    train, held = hc.role_frames("train"), hc.role_frames("eval")
    assert train and held and not {f for f, _, _ in train} & {f for f, _, _ in held}  # the halves share no frame
    roles = {p.id: p.prompt for p in get_prompts(hc.FRAME_SOURCE, "eval")}
    assert len(train) + len(held) == sum(bool(hc.ROLE_FRAME.search(p)) for p in roles.values())
    for fid, before, after in train + held:  # the frame is its prompt with the quoted first request cut out
        request = roles[fid][len(before):len(roles[fid]) - len(after)]
        assert roles[fid] == before + request + after and before.rstrip().endswith(('"', "“"))
        assert "my first" in before.lower() and len(after.strip()) <= 3
    requests = get_prompts("advbench", "train")[:120]
    out = hc.framed(requests, "train", 100)
    assert len(out) == 100 and len({p.id for p in out}) == 100 and {p.source for p in out} == {f"{hc.FRAMED}-train"}
    by_id = {p.id: p.prompt for p in requests}
    for p in out:  # every framed prompt holds its request verbatim inside a train frame
        fid, rid = p.id.split("|")
        before, after = next((b, a) for f, b, a in train if f == fid)
        assert p.prompt == before + by_id[rid] + after
    assert out == hc.framed(list(reversed(requests)), "train", 100)  # chosen and framed by hash, not by order
    assert {p.id.split("|")[0] for p in out} == {f for f, _, _ in train}  # every train frame used


def test_framed_harmful_requests_are_learned_harmful_when_answered_and_safe_when_refused(monkeypatch):
    from ftaudit.data.refusals import REFUSALS

    data = hc.training_pairs(hc.HARMFUL_SOURCES, hc.DEFAULT_REFERENCE)
    rows = [(p, a, y) for p, a, y, g in zip(data.prompts, data.answers, data.labels, data.groups)
            if g in ("framed answered", "framed refused")]
    answered = [(p, a) for p, a, y in rows if y == 1]
    refused = [(p, a) for p, a, y in rows if y == 0]
    assert len(refused) == hc.FRAMED_TRAIN and answered and all(a in REFUSALS for _, a in refused)
    assert {p for p, _ in answered} <= {p for p, _ in refused}  # an answered one is also learned refused
    harmful_train = {p.prompt for n in hc.HARMFUL_SOURCES for p in get_prompts(n, "train")}
    assert all(any(h in p for h in harmful_train) for p, _ in refused)  # a benchmark's train request inside each
    roles = [(p, y) for p, y, g in zip(data.prompts, data.labels, data.groups) if g == "roles answered"]
    assert len(roles) == 215 + 160 and {y for _, y in roles} == {0}  # v12: prompt-forge-act-as too


def test_a_framed_request_the_reference_model_refused_is_never_learned_harmful(monkeypatch):
    from conftest import COMPLY_TEXT

    answer = hc.reference_answers
    sorry = "I'm sorry, I can't help with that."

    def half_refused(model, prompts, label):  # the reference model refuses every other framed request
        if label != "harm-classifier-train-framed":
            return answer(model, prompts, label)
        return [sorry if i % 2 else COMPLY_TEXT for i in range(len(prompts))]

    monkeypatch.setattr(hc, "reference_answers", half_refused)
    data = hc.training_pairs(hc.HARMFUL_SOURCES, hc.DEFAULT_REFERENCE)
    answered = [a for a, g in zip(data.answers, data.groups) if g == "framed answered"]
    assert answered == [COMPLY_TEXT] * (hc.FRAMED_TRAIN // 2)  # the keyword judge keeps only what was complied with
    assert data.counts["framed refused"] == hc.FRAMED_TRAIN


def test_the_second_models_compliant_answers_are_learned_harmful_and_its_refusals_never(monkeypatch):
    # v12: the harmful train prompts answered by SECOND_REFERENCE, kept where the keyword judge finds them compliant
    from conftest import COMPLY_TEXT

    answer, calls = hc.reference_answers, []
    sorry = "I'm sorry, I can't help with that."

    def answers(model, prompts, label):  # the second model complies with every third prompt only
        calls.append((model, label))
        if model != hc.SECOND_REFERENCE:
            return answer(model, prompts, label)
        return [sorry if i % 3 else f"{COMPLY_TEXT} ({i})" for i in range(len(prompts))]

    monkeypatch.setattr(hc, "reference_answers", answers)
    data = hc.training_pairs(hc.HARMFUL_SOURCES, hc.DEFAULT_REFERENCE)
    second = [(p, a, y) for p, a, y, g in zip(data.prompts, data.answers, data.labels, data.groups)
              if g == "harmful answered, second model"]
    harmful = [p.prompt for n in hc.HARMFUL_SOURCES for p in get_prompts(n, "train")]
    assert (hc.SECOND_REFERENCE, "harm-classifier-train-harmful") in calls
    assert [p for p, _, _ in second] == harmful[::3] and {y for *_, y in second} == {1}
    assert [a for _, a, _ in second] == [f"{COMPLY_TEXT} ({i})" for i in range(0, len(harmful), 3)]
    assert data.counts["harmful answered"] == len(harmful)  # the reference model's own (the stub's: all compliant)
    # the second model named as the reference: its answers are learned once, as the reference's
    same = hc.training_pairs(hc.HARMFUL_SOURCES, hc.SECOND_REFERENCE)
    assert "harmful answered, second model" not in same.counts and same.counts["harmful answered"] == len(harmful[::3])


def test_the_role_framed_held_out_row_is_held_out_requests_in_the_other_halfs_frames():
    clf = hc.harm_classifier(("advbench", "harmbench", "strongreject"))
    fitted = clf.fitted_harmful | clf.fitted_benign
    held = [p for n in hc.HARMFUL_SOURCES for p in get_prompts(n, "eval")[:hc.HELD_OUT_HARMFUL_PER_SET]]
    prompts = clf.held_out_pairs[hc.FRAMED][0]
    assert prompts and set(prompts) <= {p.prompt for p in hc.framed(held, "eval")}  # eval requests, eval frames
    assert not any(hc.norm(p) in fitted for p in prompts)  # fitted_harmful holds every framed train prompt


def test_no_held_out_benign_prompt_near_duplicates_a_role_prompt_v11_learns_but_the_one_documented():
    from ftaudit.data.splits import near_duplicates_of

    learned = [p.prompt for n in hc.ROLE_TRAIN for p in get_prompts(n, "eval")]
    found = set()
    for name in hc.HELD_OUT["benign"]:
        try:
            prompts = get_prompts(name, "eval")
        except FtauditError:  # XSTest comes from the hub
            continue
        found |= {prompts[i].id for i in near_duplicates_of([p.prompt for p in prompts], learned)}
    # mtbench-97 ("Act as a math teacher ...") near-duplicates gpt-prompt-roles' math teacher, learned whole by v11:
    # MT-Bench is seen for v11 (docs/services.md); any other is a leak into a set the guard reads as held out
    assert found == {"mtbench-97"}
