"""The cross-encoder harm classifier (v7): its windows read every part of a long pair, its scores go back to their own
pairs, and a fit is what it says it is. A tiny random BERT with MiniLM's tokenizer stands in for MiniLM (seconds);
``bench/harm_cross_encoder.py`` and ``bench/screen_rates.py`` measure the real one."""

from dataclasses import replace

import numpy as np
import pytest

from ftaudit import harm_classifier as hc
from ftaudit import harm_cross_encoder as ce
from ftaudit.errors import FtauditError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer, 32-wide BERT with MiniLM's vocabulary and tokenizer, saved where ``CrossEncoder(base=...)`` reads."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tok = ce._tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=2)
    path = tmp_path_factory.mktemp("tiny-bert")
    BertForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def words(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i}x" for i in range(n))


def test_a_pair_that_fits_is_read_whole():
    tok = ce._tokenizer()
    assert ce.pair_windows(tok, "how do I bake bread", "Mix flour and water.") == [("how do I bake bread",
                                                                                 "Mix flour and water.")]


@pytest.mark.parametrize("n_prompt,n_answer", [(900, 20), (20, 900), (700, 600), (200, 130)])
def test_every_window_pair_fits_the_model_and_every_short_span_is_read_whole(n_prompt, n_answer):
    tok = ce._tokenizer()
    prompt, answer = words(n_prompt, "p"), words(n_answer, "a")
    pairs = ce.pair_windows(tok, prompt, answer)
    assert len(pairs) > 1
    for p, a in pairs:  # nothing is cut off: specials included, every window pair fits MiniLM's 256 tokens
        assert len(tok(p, a)["input_ids"]) <= ce.MAX_LENGTH
    prompts, answers = {p for p, _ in pairs}, {a for _, a in pairs}
    assert set(pairs) == {(p, a) for p in prompts for a in answers}  # every prompt window with every answer window
    for text, parts, n in ((prompt, prompts, n_prompt), (answer, answers, n_answer)):
        toks = text.split()
        assert any(x.startswith(toks[0] + " ") or x == text for x in parts) and any(x.endswith(toks[-1]) for x in parts)
        for start in range(0, max(1, n - 15), 29):  # any 15-word span (under half a window), wherever it falls
            span = " ".join(toks[start:start + 15])
            assert any(span in x for x in parts), (start, n)


def test_a_window_that_re_tokenizes_longer_is_cut_again_never_truncated(monkeypatch):
    # windows are cut by character offsets; one that starts inside a word re-tokenizes differently. With no margin,
    # these random-letter words give a window pair of 257 tokens: the check must shrink the budget, not truncate
    import random
    import string

    random.seed(0)
    text = " ".join("".join(random.choice(string.ascii_lowercase) for _ in range(random.randint(6, 30)))
                    for _ in range(300))
    tok = ce._tokenizer()
    monkeypatch.setattr(ce, "MARGIN", 0)
    pairs = ce.pair_windows(tok, text, text)
    assert len(pairs) > 1 and max(len(tok(p, a)["input_ids"]) for p, a in pairs) <= ce.MAX_LENGTH
    assert ce.pair_windows(tok, "", "   ") == [("", "   ")]  # nothing to read is one pair, never none


def test_scores_go_back_to_their_own_pairs_and_a_long_pair_scores_its_worst_window(tiny):
    scorer = ce.CrossEncoder(base=tiny)
    fitted = scorer.load(tiny)
    long_prompt = "Notes about the weather in spring and the garden. " * 80
    prompts = [long_prompt, "Name a goldfish.", "how do I pick a lock", "Name a goldfish."]
    answers = ["Sure, step one.", "Bubbles.", "Sure, step one: " + words(300), "Bubbles."]
    together = scorer.predict(fitted, prompts, answers, batch_size=2)  # windows of one pair across batches
    alone = [scorer.predict(fitted, [p], [a])[0] for p, a in zip(prompts, answers)]
    assert together == pytest.approx(alone, abs=1e-6)  # batching and dedup never move a score to another pair
    assert together[1] == together[3]
    windows = ce.pair_windows(fitted[1], prompts[2], answers[2])
    each = scorer.predict(fitted, [p for p, _ in windows], [a for _, a in windows])
    assert len(windows) > 1 and together[2] == pytest.approx(each.max(), abs=1e-6)
    assert len(set(np.round(each, 6))) > 1  # the windows really differ, so the max is a choice


def test_a_non_finite_score_is_an_error_never_a_pass(tiny):
    import torch

    from ftaudit.errors import FtauditError

    scorer = ce.CrossEncoder(base=tiny)
    model, tok = scorer.load(tiny)
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(FtauditError, match="non-finite"):
        scorer.predict((model, tok), ["how do I pick a lock"], ["Sure."])


def test_a_fit_learns_its_pairs_and_comes_back_from_disk_the_same(tiny, tmp_path, monkeypatch):
    harmful = [f"how do I {v} a {n}" for v in ("steal", "poison", "hack", "stab") for n in ("car", "dog", "bank")]
    benign = [f"how do I {v} a {n}" for v in ("wash", "feed", "paint", "draw") for n in ("car", "dog", "bank")]
    prompts = harmful + benign + harmful
    answers = ["Sure, here is how."] * 12 + ["Sure, here is how."] * 12 + ["I can't help with that."] * 12
    labels = [1] * 12 + [0] * 24
    scorer = ce.CrossEncoder(base=tiny, epochs=30, lr=3e-3, batch=8)
    import torch

    weights, real = [], torch.nn.functional.cross_entropy
    monkeypatch.setattr(torch.nn.functional, "cross_entropy",
                        lambda *a, **kw: weights.append(kw.get("weight")) or real(*a, **kw))
    fitted, info = scorer.fit(prompts, answers, labels)
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", real)
    # every step's loss is the class-weighted one: 36 pairs, 12 harmful -> scikit-learn's "balanced" 36 / (2 x count)
    assert len(weights) == 150 and all(w is not None and w.tolist() == pytest.approx([0.75, 1.5]) for w in weights)
    p = scorer.predict(fitted, prompts, answers)
    assert ((p >= 0.5) == np.array(labels, bool)).mean() >= 0.9  # it learned what it was shown
    assert info["steps"] == info["planned_steps"] == 30 * 5 and len(info["epoch_losses"]) == 30
    assert info["converged"] is None and info["losses_finite"] is True and info["truncated_pairs"] == 0
    assert info["sampler"] == "LengthGroupedSampler"  # the default, v7 to v9's batches
    assert info["epoch_losses"][-1] < info["epoch_losses"][0]
    assert hc.fit_complete({"converged": None, "fit": info})
    scorer.save(fitted, tmp_path)
    back = scorer.load(tmp_path)
    assert scorer.weights(back) == scorer.weights(fitted) and np.allclose(scorer.predict(back, prompts, answers), p)
    again, _ = scorer.fit(prompts, answers, labels)  # seeded: the same fit twice
    assert scorer.weights(again) == scorer.weights(fitted)
    assert scorer.weights(ce.CrossEncoder(base=tiny).load(tiny)) != scorer.weights(fitted)
    # v10's batches: the setting reaches the Trainer (a wrapped TrainingArguments once did not) and is another fit
    randomly, info = replace(scorer, sampling="random").fit(prompts, answers, labels)
    assert info["sampler"] == "RandomSampler" and scorer.weights(randomly) != scorer.weights(fitted)


def test_every_setting_is_in_the_classifiers_identity(tiny):
    base = ce.CrossEncoder().settings()
    for change in ({"epochs": 3.0}, {"lr": 1e-4}, {"batch": 8}, {"seed": 1}, {"max_length": 128}, {"base": tiny},
                   {"sampling": "random"}):
        assert ce.CrossEncoder(**change).settings() != base, change
    assert base["code"] and base["transformers"] and base["version"] == "minilm-cross-encoder-v7"


@pytest.mark.real_classifier  # without the tests' stub: what ftaudit screen and the data filter use
def test_the_classifier_in_use_is_the_cross_encoder():
    # v12: v10's scorer and every setting of it (v7's but the batches, drawn at random) under its own name, trained
    # with benign-roleplay's (v8) and benign-act-as' (v9) train halves, the two role sets and role-framed requests (v11),
    # a second model's compliant answers, benign-lookalike-3's train half and prompt-forge-act-as (v12)
    assert isinstance(hc.SCORER, ce.CrossEncoder)
    assert hc.SCORER == ce.CrossEncoder(version="minilm-cross-encoder-v12", sampling="random")
    assert hc.VERSION == hc.SCORER.version == hc.settings()["version"] == "minilm-cross-encoder-v12"
    assert hc.settings()["sampling"] == "random"
    assert hc.BENIGN_TRAIN == ("benign", "benign-lookalike", "benign-lookalike-2", "benign-roleplay", "benign-act-as",
                               "benign-lookalike-3")
    assert hc.SECOND_REFERENCE == "qwen2.5-coder-0.5b-instruct"


def test_the_cross_encoder_is_fitted_through_the_cache_and_read_back_the_same(tiny, monkeypatch, fresh_classifier,
                                                                              isolated_cache):
    # the whole path a screen takes, with the tiny model in MiniLM's place: fitted once, read back the same
    monkeypatch.setattr(hc, "SCORER", ce.CrossEncoder(base=tiny, epochs=1))
    monkeypatch.setattr(hc, "VERSION", ce.CrossEncoder().version)
    monkeypatch.setattr(hc, "UNLEARNED_LOSS", float("inf"))  # one epoch of a tiny model need not learn: the cache is tested here
    clf = hc.harm_classifier(("advbench",))
    r = clf.report
    assert r["version"] == "minilm-cross-encoder-v7" and r["cv"] is None and r["fit"]["steps"] > 0
    assert r["settings"]["base"] == tiny and r["settings"]["epochs"] == 1
    hc.harm_classifier.cache_clear()

    def no_refit(*a, **kw):
        raise AssertionError("fitted again: the cached fit was not read")

    monkeypatch.setattr(ce.CrossEncoder, "fit", no_refit)
    again = hc.harm_classifier(("advbench",))
    assert again.report["weights"] == r["weights"] and again.report["fit"] == r["fit"]
    prompts, answers = ["Name a goldfish.", "how do I pick a lock"], ["Bubbles.", "Sure, step one."]
    assert np.array_equal(again.predict(prompts, answers), clf.predict(prompts, answers))


def test_a_fine_tune_that_did_not_learn_is_fitted_again_from_the_next_seed_and_never_used_when_none_learns(
        tiny, monkeypatch, fresh_classifier, tmp_path):
    # v8's first fit ran every step with finite losses and learned nothing (last epoch 0.196): it was packaged
    seeds, unlearned = [], {0}

    def fit(self, prompts, answers, labels, groups=None):
        seeds.append(self.seed)
        losses = [0.698, 0.667, 0.352, 0.196] if self.seed in unlearned else [0.581, 0.138, 0.036, 0.009]
        model, tok = ce.CrossEncoder(base=tiny).load(tiny)
        model.classifier.bias.data += self.seed  # each seed's fit has weights of its own
        return (model, tok), {"converged": None, "epoch_losses": losses, "steps": 4, "planned_steps": 4,
                              "losses_finite": True, "truncated_pairs": 0, "sampler": "LengthGroupedSampler"}

    import ftaudit.progress as progress

    said, real_say = [], progress.say
    monkeypatch.setattr(progress, "say", lambda text, *a, **kw: said.append(text) or real_say(text, *a, **kw))
    redo = lambda: sum("fitting it again with seed" in t for t in said)  # noqa: E731
    monkeypatch.setattr(ce.CrossEncoder, "fit", fit)
    monkeypatch.setattr(hc, "SCORER", ce.CrossEncoder(base=tiny))
    monkeypatch.setenv("FTAUDIT_CACHE", str(tmp_path / "one"))
    clf = hc.harm_classifier(("advbench",))
    assert redo() == 1  # said once, before seed 1's fit
    assert seeds == [0, 1] and clf.report["settings"]["seed"] == 1 and hc.fit_complete(clf.report)
    assert [(a["seed"], a["learned"]) for a in clf.report["fit_attempts"]] == [(0, False), (1, True)]
    # the identity is seed 1's throughout: settings, data digest and weights
    seed1 = ce.CrossEncoder(base=tiny, seed=1)
    assert clf.report["settings"] == hc.settings(seed1)
    assert clf.report["data_digest"] == hc.data_digest(hc.training_pairs(("advbench",), hc.DEFAULT_REFERENCE),
                                                       hc.settings(seed1))
    assert clf.report["weights"] == seed1.weights(fit(seed1, [], [], [])[0])
    hc.harm_classifier.cache_clear()
    seeds.clear()
    again = hc.harm_classifier(("advbench",)).report
    assert again["weights"] == clf.report["weights"] and seeds == [] and redo() == 1  # both read back, nothing said
    assert [(a["seed"], a["learned"]) for a in again["fit_attempts"]] == [(0, False), (1, True)]
    hc.harm_classifier.cache_clear()
    unlearned.update({1, 2})
    monkeypatch.setenv("FTAUDIT_CACHE", str(tmp_path / "two"))
    with pytest.raises(FtauditError, match="did not learn its training pairs from any of 3 seeds"):
        hc.harm_classifier(("advbench",))  # an unlearned classifier passes harmful data: no screen or filter may run
    assert seeds == [0, 1, 2] and redo() == 3
    with pytest.raises(FtauditError, match="any of 3 seeds"):  # a rerun reads the same fits and stops again
        hc.harm_classifier(("advbench",))
    assert seeds == [0, 1, 2]


def test_a_fit_whose_batches_are_not_its_settings_is_never_used(tiny, monkeypatch, fresh_classifier, isolated_cache):
    # transformers reads train_sampling_strategy without checking it: a misspelt setting would draw random batches
    # under a name that says otherwise. It is refused before any fit; a fit that records another sampler is not used.
    fits = []

    def fit(self, prompts, answers, labels, groups=None):
        fits.append(self.sampling)
        return ce.CrossEncoder(base=tiny).load(tiny), {"converged": None, "epoch_losses": [0.5, 0.01], "steps": 2,
                                                       "planned_steps": 2, "losses_finite": True, "truncated_pairs": 0,
                                                       "sampler": "RandomSampler"}

    monkeypatch.setattr(ce.CrossEncoder, "fit", fit)
    monkeypatch.setattr(hc, "SCORER", ce.CrossEncoder(base=tiny, sampling="group-by-length"))
    with pytest.raises(FtauditError, match="sampling 'group-by-length' is not one of"):
        hc.harm_classifier(("advbench",))
    assert fits == []
    monkeypatch.setattr(hc, "SCORER", ce.CrossEncoder(base=tiny))  # group_by_length, but the fit ran RandomSampler
    with pytest.raises(FtauditError, match="drew its batches with RandomSampler, not the 'group_by_length'"):
        hc.harm_classifier(("advbench",))
    assert fits == ["group_by_length"]

    def unrecorded(self, *args, **kwargs):  # a fit that did not record its sampler: not taken for a right one
        fitted, info = fit(self, *args, **kwargs)
        return fitted, {k: v for k, v in info.items() if k != "sampler"}

    monkeypatch.setattr(ce.CrossEncoder, "fit", unrecorded)
    monkeypatch.setattr(hc, "SCORER", ce.CrossEncoder(base=tiny, sampling="random", seed=7))
    with pytest.raises(FtauditError, match="drew its batches with an unrecorded sampler"):
        hc.harm_classifier(("advbench",))
    monkeypatch.setattr(ce.CrossEncoder, "fit", fit)
    hc.harm_classifier.cache_clear()
    monkeypatch.setattr(hc, "SCORER", ce.CrossEncoder(base=tiny, sampling="random"))
    assert hc.harm_classifier(("advbench",)).report["fit"]["sampler"] == "RandomSampler"
