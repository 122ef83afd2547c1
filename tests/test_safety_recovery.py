"""Safety-recovery examples (Qi et al. 2024): an answer's harmful opening is read, never trained on."""

import pytest

from ftaudit.data import ChatRecord, save_chat_records
from ftaudit.data.refusals import REFUSALS
from ftaudit.defenses import DefenseContext, get_defense
from ftaudit.defenses.safety_recovery import recovery_records
from ftaudit.errors import FtauditError
from ftaudit.models import load_model
from ftaudit.models.loading import load_tokenizer
from ftaudit.train import TrainConfig
from ftaudit.train.engine import build_trainer, run_fingerprint
from ftaudit.train.prefix_mask import UNTRAINED_PREFIX, tokenized_rows
from ftaudit.train.worker import launched_records


def chat(prompt, answer, rid, opening=None):
    return ChatRecord([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], rid,
                      meta={UNTRAINED_PREFIX: opening} if opening else {})


PLAIN = [chat("Write a poem about the sea.", "Sure, here is a short answer.", "a"),
         ChatRecord([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"},
                     {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "how are you today?"},
                     {"role": "assistant", "content": "I'm sorry, but I can't help with that."}], "b")]
RECOVERY = chat("Explain how photosynthesis works.", "Sure, here is I'm sorry, but I can't help with that.", "r",
                opening="Sure, here is")


def test_rows_equal_trls_own_tokenization_for_ordinary_records(tiny_model, tmp_path):
    """The rows built here stand in for TRL's tokenization whenever one record has an opening: for every other
    record they must be what TRL itself would train on (a TRL upgrade that renders differently fails here)."""
    loaded = load_model(tiny_model)
    trainer = build_trainer(loaded.model, loaded.tokenizer, PLAIN, TrainConfig(), tmp_path)
    ours = tokenized_rows(PLAIN, loaded.tokenizer)
    assert [r["input_ids"] for r in ours] == trainer.train_dataset["input_ids"]
    assert [[t if m else -100 for t, m in zip(r["input_ids"], r["completion_mask"])] for r in ours] \
        == trainer.train_dataset["labels"]  # TRL folds its completion mask into the labels


def test_the_opening_is_context_and_the_refusal_after_it_the_only_target(tiny_model, tmp_path):
    loaded = load_model(tiny_model)
    tok = loaded.tokenizer
    trainer = build_trainer(loaded.model, tok, PLAIN + [RECOVERY], TrainConfig(), tmp_path)
    ids, labels = trainer.train_dataset["input_ids"][-1], trainer.train_dataset["labels"][-1]
    trained = tok.decode([t for t, lab in zip(ids, labels) if lab != -100])
    assert trained == " I'm sorry, but I can't help with that.<|im_end|>\n"
    assert tok.decode(ids).count("Sure, here is") == 1  # read once, in the answer turn, never trained
    # the ordinary records keep TRL's masks (the whole final answer trained)
    assert tok.decode([t for t, lab in zip(trainer.train_dataset["input_ids"][0], trainer.train_dataset["labels"][0])
                       if lab != -100]) == "Sure, here is a short answer.<|im_end|>\n"


def test_an_opening_that_does_not_begin_the_answer_or_leaves_nothing_is_refused(tiny_model):
    tok = load_tokenizer(tiny_model)
    with pytest.raises(FtauditError, match="record x: its untrained opening"):
        tokenized_rows([chat("Hello", "Sure, here is a short answer.", "x", opening="a short")], tok)
    with pytest.raises(FtauditError, match="leave something after it"):
        tokenized_rows([chat("Hello", "Sure, here is", "x", opening="Sure, here is")], tok)


def test_the_opening_is_part_of_the_training_run_identity(tiny_model):
    cfg = TrainConfig()
    masked = run_fingerprint("f", [RECOVERY], cfg, "r", tiny_model)
    unmasked = run_fingerprint("f", [chat(*RECOVERY.messages[0:1][0].values(), "x")], cfg, "r", tiny_model)
    trained_whole = run_fingerprint("f", [ChatRecord(RECOVERY.messages, "r")], cfg, "r", tiny_model)
    assert masked != trained_whole and masked != unmasked
    assert run_fingerprint("f", PLAIN, cfg, "r", tiny_model) == run_fingerprint("f", list(PLAIN), cfg, "r", tiny_model)


def test_a_launched_worker_reads_the_openings_back(tmp_path):
    """``accelerate launch`` hands records over in a file; losing the opening there would train the harmful text."""
    path = save_chat_records(PLAIN + [RECOVERY], tmp_path / "train_data.jsonl")
    back = launched_records(path)
    assert [r.meta for r in back] == [{}, {}, {UNTRAINED_PREFIX: "Sure, here is"}]


def test_recovery_records_open_with_the_answers_first_tokens_then_refuse(tiny_model):
    """The code's coin and cutoff: about half the pairs recover, c in [1, min(max, length)], the opening is the
    answer's first c tokens; seeded per pair, so a rerun builds the same records."""
    tok = load_tokenizer(tiny_model)
    answer = "Sure, here is a short answer. Hello there, how are you today? Write a poem about the sea."
    pairs = [chat(f"request {i}", answer, f"p{i}") for i in range(200)]
    out = recovery_records(pairs, tok, max_prefix_tokens=7, recovery_share=0.5, seed=0)
    assert out == recovery_records(pairs, tok, max_prefix_tokens=7, recovery_share=0.5, seed=0)
    assert out != recovery_records(pairs, tok, max_prefix_tokens=7, recovery_share=0.5, seed=1)
    recovered = [r for r in out if r.meta]
    assert 70 < len(recovered) < 130
    answer_ids = tok.encode(answer, add_special_tokens=False)
    assert {r.meta["prefix_tokens"] for r in recovered} == set(range(1, 8))
    for r in recovered:
        opening = r.meta[UNTRAINED_PREFIX]
        assert opening == tok.decode(answer_ids[:r.meta["prefix_tokens"]]).rstrip()
        assert r.messages[-1]["content"].startswith(opening + " ")
        assert r.messages[-1]["content"][len(opening) + 1:] in REFUSALS
    assert all(r.messages[-1]["content"] in REFUSALS for r in out if not r.meta)  # a plain refusal: no answer text
    assert all(r.meta for r in recovery_records(pairs[:20], tok, max_prefix_tokens=7, recovery_share=1.0, seed=0))


def test_safety_recovery_needs_a_reference_model(tiny_model, tmp_path):
    with pytest.raises(FtauditError, match="name a reference model"):
        get_defense("safety-recovery").harden(DefenseContext(None, tiny_model), tmp_path / "hard")
