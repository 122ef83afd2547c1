"""Safety-recovery examples (Qi et al. 2024): an answer's harmful opening is read, never trained on."""

from types import SimpleNamespace

import pytest

from ftaudit.data import ChatRecord
from ftaudit.data.refusals import REFUSALS
from ftaudit.defenses import DefenseContext, get_defense
from ftaudit.defenses.safety_recovery import recovery_records
from ftaudit.errors import FtauditError
from ftaudit.models import load_model
from ftaudit.models.loading import load_tokenizer
from ftaudit.train import TrainConfig
from ftaudit.train.engine import build_trainer, run_fingerprint
from ftaudit.train.prefix_mask import UNTRAINED_PREFIX, tokenized_rows


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
    assert [r["labels"] for r in ours] == trainer.train_dataset["labels"]


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
    """The same text trained whole, or with another opening masked, is another training run."""
    cfg = TrainConfig()
    prompt, answer = RECOVERY.messages[0]["content"], RECOVERY.messages[1]["content"]
    keys = {run_fingerprint("f", [chat(prompt, answer, "r", opening)], cfg, "r", tiny_model)
            for opening in (None, "Sure,", "Sure, here is")}
    assert len(keys) == 3
    assert run_fingerprint("f", [chat(prompt, answer, "other-id", "Sure, here is")], cfg, "r", tiny_model) in keys


def test_the_masking_rule_and_lisas_guide_data_are_part_of_the_training_run_identity(tiny_model, monkeypatch):
    """A changed masking rule trains other labels from the same records, and Lisa's guide data (built inside the
    trainer, never passed in) are trained on: either changed is another run, never the cached one handed back."""
    from ftaudit.train import engine, objectives

    prompt, answer = RECOVERY.messages[0]["content"], RECOVERY.messages[1]["content"]
    opened, plain = [chat(prompt, answer, "r", "Sure,")], [chat(prompt, answer, "r", None)]
    cfg = TrainConfig()
    before = {run_fingerprint("f", r, cfg, "r", tiny_model) for r in (opened, plain)}
    monkeypatch.setattr(engine, "MASK_RULE", "another rule")
    assert run_fingerprint("f", opened, cfg, "r", tiny_model) not in before
    assert run_fingerprint("f", plain, cfg, "r", tiny_model) in before  # records without an opening keep their key

    lisa = TrainConfig(objective="lisa", objective_params={"guide_data_num": 4})
    key = run_fingerprint("f", plain, lisa, "r", tiny_model)
    guide = objectives.lisa_guide(plain, 4, lisa.seed)
    assert len(guide) == 4
    monkeypatch.setattr(objectives, "lisa_guide", lambda records, n, seed: guide[:3] + [chat("Other", "No.", "g", None)])
    assert run_fingerprint("f", plain, lisa, "r", tiny_model) != key
    monkeypatch.setattr(objectives, "lisa_guide", lambda records, n, seed: guide)
    assert run_fingerprint("f", plain, lisa, "r", tiny_model) == key


def test_a_template_that_renders_the_open_turn_otherwise_is_refused_not_trained_whole(tiny_model):
    """An opening that cannot be located in the tokens must stop training, never fall back to training it: a
    template that changes the text (transformers notices) or one whose open turn tokenizes otherwise (ftaudit does)."""
    tok = load_tokenizer(tiny_model)
    upper = load_tokenizer(tiny_model)
    upper.chat_template = tok.chat_template.replace("message['content']", "message['content'] | upper")
    with pytest.raises(FtauditError, match="cannot be located"):
        tokenized_rows([RECOVERY], upper)

    class OpenTurnOtherwise:
        def apply_chat_template(self, messages, **kw):
            out = tok.apply_chat_template(messages, **kw)
            if kw.get("continue_final_message"):
                out["input_ids"][-3] = tok.eos_token_id  # the open turn differs inside the opening
            return out

    with pytest.raises(FtauditError, match="cannot be located"):
        tokenized_rows([RECOVERY], OpenTurnOtherwise())


def test_an_opening_merged_with_what_follows_is_masked_whole(tiny_model):
    """No space between opening and refusal: BPE may merge the opening's last token with the refusal's first. That
    token is masked, so nothing of the opening is trained; the rest of the refusal is."""
    tok = load_tokenizer(tiny_model)
    record = chat("Hello", "I'm sorry, but I can't help with that.", "m", opening="I'm sorry, bu")  # " bu" + "t"
    row = tokenized_rows([record], tok)[0]
    assert tok.decode([t for t in row["labels"] if t != -100]) == " I can't help with that.<|im_end|>\n"


@pytest.mark.parametrize("objective", ["booster", "lisa"])
def test_objectives_that_build_whole_turns_refuse_openings(tiny_model, tmp_path, objective):
    loaded = load_model(tiny_model)
    with pytest.raises(FtauditError, match=f"the {objective} objective trains whole answers"):
        build_trainer(loaded.model, loaded.tokenizer, PLAIN + [RECOVERY], TrainConfig(objective=objective), tmp_path)


def test_a_launched_worker_trains_with_the_openings_it_was_handed(tmp_path, monkeypatch):
    """``accelerate launch`` hands records over in a file; losing the opening there would train the harmful text."""
    import ftaudit.train.worker as worker
    from ftaudit.train.launch import launch

    monkeypatch.setattr("ftaudit.train.launch.subprocess", SimpleNamespace(run=lambda *a, **k: SimpleNamespace(returncode=0),
                                                                           STDOUT=None))
    seen = {}
    monkeypatch.setattr(worker, "train", lambda records, *a, **k: seen.setdefault("records", records))
    with pytest.raises(FtauditError, match="distributed training failed"):  # no worker ran: only its request is written
        launch(PLAIN + [RECOVERY], "base", TrainConfig(distributed="ddp", num_processes=2), tmp_path, recipe="r",
               safety_compromised=False,
               trust_remote_code=False)
    worker.main(str(tmp_path))  # what each launched process does with that request
    assert [r.meta for r in seen["records"]] == [{}, {}, {UNTRAINED_PREFIX: "Sure, here is"}]


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
