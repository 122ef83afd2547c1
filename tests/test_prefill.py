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
        with pytest.raises(FtauditError, match="one prefill per prompt"):
            cached_generate(store, tiny_model, "m", "", "d", "eval", prompts, cfg, loaded, ["a", "b"])


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
        for text, ids in zip(prefixes.text(tok, "advbench", 2), prefixes.tokens["advbench"]):
            assert tok.encode(text, add_special_tokens=False)[:2] == ids[:2]  # the first k tokens, in its tokenizer
        rows = prefill_table(store, ["tiny"], (2, 4), ["keyword"])
        assert [r["k"] for r in rows] == [0, 2, 4]
        assert {r["refusal"]["n"] for r in rows} == {len(kept)} and rows[0]["vs_unprefilled"] is None
        assert rows[1]["vs_unprefilled"]["n"] == len(kept)
        models = {r["model"] for r in store.eval_table()}
        assert {model_label("tiny", k) for k in (0, 2, 4)} <= models
    with pytest.raises(FtauditError, match="positive"):
        evaluate_prefilled(None, "tiny", tiny_model, sets, GenerationConfig(), ["keyword"], tiny_model, ks=(0,))
