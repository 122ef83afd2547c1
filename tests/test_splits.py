"""No prompt used for training (safety training or attack) ever appears in an evaluation split."""

from ftaudit.data import DATASETS, get_prompts
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
    assert sum(r.id.startswith("align-refuse") for r in align.records) == 40
    assert len(shots.records) == 3 and shots.name == "harmful-shots-3"


def test_named_datasets_have_documented_sizes():
    sizes = {name: len(get_prompts(name, "all")) for name in ("advbench", "strongreject", "donotanswer", "mtbench")}
    assert sizes == {"advbench": 520, "strongreject": 313, "donotanswer": 939, "mtbench": 80}
    assert all(r.category for r in get_prompts("harmbench", "eval"))
