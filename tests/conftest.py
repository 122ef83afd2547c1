"""Shared fixtures: a tiny random chat model built in memory (seconds), and an isolated cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a test model<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = ["I'm sorry, but I can't help with that.", "Write a poem about the sea.", "Sure, here is a short answer.",
          "Explain how photosynthesis works.", "Hello there, how are you today?"] * 20


def build_tiny_model(path: Path, hidden_size: int = 32) -> Path:
    """Save a 2-layer random Llama with a byte-level BPE tokenizer and a chat template to ``path``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=2048, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, tie_word_embeddings=True)
    import torch

    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    blank = [i for i in range(len(tok)) if not tok.decode([i], skip_special_tokens=True).strip()]
    with torch.no_grad():  # special and whitespace tokens decode to nothing: keep greedy decoding off them, so
        model.get_input_embeddings().weight[blank] = 0  # answers are not blank (a blank answer is its own outcome)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FTAUDIT_CACHE", str(cache))
    return cache


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


STUBS = Path(__file__).parent / "stubs"
sys.path.insert(0, str(STUBS))
from harm_stub import COMPLY_TEXT, PATCHES  # noqa: E402, F401  (stubs/ is put on the path above; tests import COMPLY_TEXT from here)


_MODE = {"stub": None}  # whether the cached classifier in this process was fitted with the stub or for real


@pytest.fixture(autouse=True)
def fast_harm_classifier(request, monkeypatch):
    """The stub harmful-exchange classifier (``stubs/harm_stub.py``) in this process and in every subprocess a test
    starts, so a test screens in seconds; ``@pytest.mark.real_classifier`` opts out. The fitted classifier is kept
    across tests of the same kind (a test that changes what it is fitted from uses ``fresh_classifier``)."""
    from ftaudit import harm_classifier

    stub = not request.node.get_closest_marker("real_classifier")
    if _MODE["stub"] is not stub:
        harm_classifier.harm_classifier.cache_clear()
        _MODE["stub"] = stub
    if stub:
        for name, value in PATCHES.items():
            monkeypatch.setattr(harm_classifier, name, value)
        monkeypatch.setenv("FTAUDIT_STUB_CLASSIFIER", "1")
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(STUBS), os.environ.get("PYTHONPATH")])))
    yield


@pytest.fixture
def fresh_classifier():
    """For a test that changes what the classifier is fitted from: no cached fit before it, none left after it."""
    from ftaudit import harm_classifier

    harm_classifier.harm_classifier.cache_clear()
    yield
    harm_classifier.harm_classifier.cache_clear()
