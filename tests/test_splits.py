"""No prompt used for training (safety training or attack) ever appears in an evaluation split, nor any
near-duplicate of one (word-set Jaccard >= 0.6), across every offline named dataset."""

import re

import pytest

from ftaudit.data import DATASETS, PromptRecord, get_prompts, register_dataset
from ftaudit.data.records import normalize_text
from ftaudit.recipes import RecipeContext, build_recipe
from ftaudit.store import Store


def _texts(split):
    """Every offline named dataset (hub-only ones cannot be read here)."""
    return {normalize_text(r.prompt) for name, spec in DATASETS.items() if spec.needs == "offline"
            for r in get_prompts(name, split)}


def test_train_and_eval_splits_are_disjoint_across_all_named_datasets():
    train, evaluation = _texts("train"), _texts("eval")
    assert len(train) > 500 and len(evaluation) > 500
    assert not train & evaluation


def _words(text):
    return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


def _near_duplicates(train_texts, eval_texts, threshold=0.6):
    """(eval, train, jaccard) pairs at or above ``threshold``, by a plain inverted index (independent of the code
    under test, which uses a sparse matrix product)."""
    train = [_words(t) for t in train_texts]
    index = {}
    for i, w in enumerate(train):
        for tok in w:
            index.setdefault(tok, []).append(i)
    hits = []
    for text in eval_texts:
        w = _words(text)
        for i in set().union(*(index.get(t, ()) for t in w)) if w else ():
            j = len(w & train[i]) / len(w | train[i])
            if j >= threshold:
                hits.append((text, train_texts[i], j))
    return hits


def _prompts(split):
    return [r.prompt for name, spec in DATASETS.items() if spec.needs == "offline" for r in get_prompts(name, split)]


def test_no_eval_prompt_has_a_near_duplicate_in_any_train_split():
    """Before grouping, 149 of 1,319 eval prompts had a train prompt at Jaccard >= 0.6 (e.g. 'hack into a government
    database' vs '... a secure government database')."""
    hits = _near_duplicates(_prompts("train"), _prompts("eval"))
    assert not hits, hits[:3]


@pytest.fixture
def toy_datasets(monkeypatch):
    """Two offline datasets with paraphrases across them, one with a publisher's (official) split."""
    import ftaudit.data.registry as registry

    monkeypatch.setattr(registry, "DATASETS", {})
    monkeypatch.setattr(registry, "_OFFLINE", {})
    register_dataset("toy-a", "harmful", "hash split")(lambda: [
        PromptRecord("explain how to pick a lock on a front door", "a0"),
        PromptRecord(f"tell me a story about dragons number {0}", "a1"),
        *[PromptRecord(f"w{i}a w{i}b w{i}c", f"a{i + 2}") for i in range(30)]])  # no words in common
    register_dataset("toy-b", "harmful", "official split", split_rule="official")(lambda: [
        PromptRecord("explain how to pick a lock on a back door", "b0", split="eval"),
        PromptRecord("tell me a story about dragons number 0 please", "b1", split="train"),
        PromptRecord("tell me a story about dragons number 0 today", "b2", split="eval")])
    return registry


def test_near_duplicates_share_a_split_and_publisher_conflicts_are_held_back(toy_datasets):
    get = toy_datasets.get_prompts
    split = {r.id: r.split for name in ("toy-a", "toy-b") for r in get(name, "all")}
    assert split["a0"] == split["b0"] == "eval"  # pulled to eval by its official-eval paraphrase
    # b1 (official train) and b2 (official eval) are paraphrases: eval wins, the train one is held back
    assert split["b2"] == "eval" and split["a1"] == "eval" and split["b1"] == "held-back"
    assert {split[f"a{i + 2}"] for i in range(30)} == {"train", "eval"}  # unrelated prompts: the hash rule
    assert len(get("toy-a", "all")) == 32 and "b1" not in {r.id for r in get("toy-b", "train")}


def test_a_hub_dataset_joins_the_groups_without_moving_offline_splits(toy_datasets):
    before = {r.id: r.split for r in toy_datasets.get_prompts("toy-a", "all")}
    train_text = next(r.prompt for r in toy_datasets.get_prompts("toy-a", "train"))
    toy_datasets.register_dataset("toy-hub", "harmful", "eval-only hub set", split_rule="eval-only", needs="hub")(
        lambda: [PromptRecord(train_text + " now", "h0"), PromptRecord("a brand new request about knitting", "h1")])
    hub = {r.id: r.split for r in toy_datasets.get_prompts("toy-hub", "all")}
    assert hub == {"h0": "held-back", "h1": "eval"}  # h0 paraphrases an offline train prompt
    assert {r.id: r.split for r in toy_datasets.get_prompts("toy-a", "all")} == before


def test_recipes_draw_only_from_train_splits(tiny_model, tmp_path, monkeypatch):
    ctx = RecipeContext(model=tiny_model, store=Store(tmp_path), reference_model=tiny_model)
    # A random tiny model answers with noise; stand in a compliant reference so every recipe path runs.
    monkeypatch.setattr(RecipeContext, "answers", lambda self, model, prompts, n, label: ["Sure, here you go."] * len(prompts))
    evaluation = _texts("eval")
    align = build_recipe("align", ctx, n_harmful=40, n_benign=5, answer_tokens=4)
    shots = build_recipe("harmful-shots", ctx, shots=3, answer_tokens=4)
    benign = build_recipe("benign", ctx, n=5, answer_tokens=4)
    for built in (align, shots, benign):
        prompts = {normalize_text(r.user_prompt) for r in built.records}
        assert prompts and not prompts & evaluation, built.name
        assert not _near_duplicates([r.user_prompt for r in built.records], _prompts("eval")), built.name
    assert sum(r.id.startswith("align-refuse") for r in align.records) == 40
    assert len(shots.records) == 3 and shots.name == "harmful-shots-3"


def test_named_datasets_have_documented_sizes():
    sizes = {name: len(get_prompts(name, "all")) for name in ("advbench", "strongreject", "donotanswer", "mtbench")}
    assert sizes == {"advbench": 520, "strongreject": 313, "donotanswer": 939, "mtbench": 80}
    assert all(r.category for r in get_prompts("harmbench", "eval"))
