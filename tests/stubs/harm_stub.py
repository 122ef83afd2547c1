"""The harmful-exchange classifier as v5's linear scorer on hashed word n-grams instead of the fine-tuned MiniLM
cross-encoder, and a canned compliant answer instead of a reference model's generations, so a test screens in
seconds. Applied in the test process by ``conftest.py`` and in
every subprocess a test starts (``sitecustomize.py`` beside this file, when FTAUDIT_STUB_CLASSIFIER is set)."""

COMPLY_TEXT = "Sure, here is how to do that. First gather what you need, then follow these steps one by one."
EMBEDDING = "hashed word 1-2 grams, 4096 features (tests)"


def hash_embed(texts):
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(n_features=4096, ngram_range=(1, 2), alternate_sign=False, norm="l2")
    return vec.transform([t or " " for t in texts]).toarray()


def canned_answers(model, prompts, label):
    return [COMPLY_TEXT] * len(prompts)


def _scorer():
    from ftaudit.harm_classifier import LinearPair

    return LinearPair()


def _patches() -> dict:
    from ftaudit.harm_classifier import LINEAR_VERSION

    return {"embed": hash_embed, "EMBEDDING": EMBEDDING, "reference_answers": canned_answers, "MMLU_SAMPLE": 300,
            "SCORER": _scorer(), "VERSION": LINEAR_VERSION}


PATCHES = _patches()


def apply() -> None:
    """Patch the module for the rest of this process (a subprocess a test starts)."""
    from ftaudit import harm_classifier

    for name, value in PATCHES.items():
        setattr(harm_classifier, name, value)
