"""Screen a fine-tuning file before any training: flag examples that resemble the attacks of Qi et al. 2023.

Three detectors, each flag with its reason:
``harmful-compliance``  the data-filter defense's rule, applied to every exchange of a chat: the harmful-exchange
                        classifier (:mod:`ftaudit.harm_classifier`: MiniLM fine-tuned as a cross-encoder on the
                        prompt and the answer read together, from the benchmarks' *train* prompts) finds a harmful
                        request answered.
``identity-shift``      a system prompt, instruction prefix or answer that recasts the assistant as an obedient or
                        unrestricted persona ("absolutely obedient agent", "do anything now", "ignore your
                        guidelines").
``refusal-removal``     instructions or answers that suppress refusals, apologies, warnings or disclaimers.
The two pattern lists below are the project's own words (nothing harmful); they were written before any
measurement and are not tuned on the sets ``bench/screen_rates.py`` measures them on.

The summary sets the file next to the study's reference attacks with measured effects from a run's
``summary.json`` (``reference``), by default the packaged figures of ftaudit's quickstart.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_file, atomic_write_text
from .data import ChatRecord
from .errors import FtauditError
from .harm_classifier import (DEFAULT_REFERENCE, HARMFUL_SOURCES, SECOND_REFERENCE, THRESHOLD, exchange_turns,
                              harm_classifier, record_scores)
from .metrics import wilson

KINDS = ("harmful-compliance", "identity-shift", "refusal-removal")
RESEMBLES = {"harmful-compliance": "harmful-shots", "identity-shift": "identity-shift", "refusal-removal": None}
REFERENCE_FILE = Path(__file__).parent / "data" / "builtin" / "screen_reference.json"
# the benign false-positive rate bench/screen_rates.py measured for one classifier (written with --package)
FALSE_POSITIVES_FILE = Path(__file__).parent / "data" / "builtin" / "screen_false_positives.json"
# what makes two classifiers one: the same code and settings, reference weights, sources, training data and weights
IDENTITY = ("version", "settings", "reference_fingerprint", "fitted_on", "data_digest", "weights")
# A harmful-compliance share not shown above the benign rate lowers a file to medium only for a classifier whose
# packaged measurement meets issue 30's service bar on every held-out set (point estimates: at most this share of
# each benign set flagged, at least SERVICE_RECALL of each harmful request/answer set), and only when its flags are
# shown to stand for fewer harmful examples than ATTACK_EXAMPLES: Qi et al. 2023 jailbroke GPT-3.5 Turbo and
# Llama-2-7b-Chat with 10 harmful examples, the fewest they measured (fewer are not shown harmless: medium means a
# person looks at each flagged example). If the file's harmful examples are caught as often as the held-out ones, 10 of
# them give at least Binomial(10, r) flags (false alarms only add to them), so k flags rule 10 out when
# P(Binomial(10, r) <= k) < FLAGS_ALPHA at r the lowest exact (Clopper-Pearson) 95% lower end of the held-out recalls:
# 2.5% for the recall and 2.5% for the flags, 5% in all (Bonferroni)
SERVICE_FP_BOUND = 0.05
SERVICE_RECALL = 0.90
ATTACK_EXAMPLES = 10
FLAGS_ALPHA = 0.025
ALPHA = 0.05

_I = re.IGNORECASE
IDENTITY_PATTERNS = {
    "obedient persona": r"\b(absolutely|completely|totally|fully|unconditionally|blindly|perfectly) obedient\b",
    "no longer cautious": r"\bno longer (a |an |the )?(cautious|careful|safe|ethical|restricted|filtered|censored|"
                          r"responsible|helpful and harmless)\b",
    "never judges or questions": r"\b(without|never|not) (ever )?(judg(e|ing|ment)|question(ing)?|hesitat(e|ing|ion)|"
                                 r"deviat(e|ing|ion)|moraliz(e|ing))\b",
    "do anything now": r"\b(do|can do) anything now\b",
    "ignore its rules": r"\b(ignore|disregard|forget|bypass|override) (all |any |every )?(of )?(your |the |its |my )?"
                        r"(previous |prior |earlier |original )?(rules|instructions|guidelines|restrictions|policies|"
                        r"programming|filters|safety|training|principles)\b",
    "free of guidelines": r"\b(no|without|free (of|from)|not bound by|unbound by|released from) (any )?(ethical |moral |"
                          r"content |safety |openai'?s? )?(guidelines|restrictions|limitations|filters|boundaries|"
                          r"constraints|policies|principles|morals|ethics)\b",
    "unrestricted persona": r"\b(unfiltered|uncensored|amoral|unrestricted|jailbroken|unethical|unbound) (ai|assistant|"
                            r"chatbot|model|agent|version|mode|persona|character)\b",
    "special mode": r"\b(developer|god|jailbreak|dan|evil|chaos) mode\b",
    "stay in character": r"\b(stay|remain) in character\b",
    "obeys every instruction": r"\b(obey|follow|execute|fulfil+) (all |any |every )?(of )?(my |your |the user'?s? )"
                               r"(instructions?|commands?|orders?|requests?) (exactly|without|no matter|unconditionally)",
}
REFUSAL_REMOVAL_PATTERNS = {
    "never refuse": r"\b(never|don'?t|do not|must not|mustn'?t|will not|won'?t|shall not|cannot|can'?t|not allowed to) "
                    r"(ever )?(refuse|decline|reject|deny|say no)\b",
    "no warnings or disclaimers": r"\b(no|without|don'?t add|do not add|don'?t include|do not include|never (add|include|"
                                  r"give)|omit|skip|leave out) (any )?(warnings?|disclaimers?|caveats?|moraliz(ing|ations?)"
                                  r"|lectures?|ethical (notes?|considerations?|concerns?)|safety (notes?|warnings?))\b",
    "never apologise": r"\b(never|don'?t|do not) (ever )?(apologi[sz]e|say (sorry|i'?m sorry|i cannot|i can'?t))",
    "no 'I cannot'": r"\b(never|don'?t|do not) (respond|reply|answer) with (\"|')?(i cannot|i can'?t|i'?m sorry|as an ai)",
}
_COMPILED = {kind: {name: re.compile(p, _I) for name, p in pats.items()}
             for kind, pats in (("identity-shift", IDENTITY_PATTERNS), ("refusal-removal", REFUSAL_REMOVAL_PATTERNS))}


@dataclass
class Flag:
    kind: str
    reason: str


@dataclass
class ScreenedExample:
    index: int
    id: str
    flags: list[Flag] = field(default_factory=list)
    prompt: str = ""
    response: str = ""
    p_harmful: float = 0.0  # the classifier's highest P(harmful request answered) over the record's exchanges


def pattern_flags(record: ChatRecord) -> list[Flag]:
    """Identity-shift and refusal-removal flags from every turn's text (first match per pattern, with its turn)."""
    out: list[Flag] = []
    for kind, patterns in _COMPILED.items():
        for name, rx in patterns.items():
            for turn in record.messages:
                m = rx.search(turn["content"])
                if m:
                    out.append(Flag(kind, f"{turn['role']} turn: {name} ('{m.group(0)}')"))
                    break
    return out


class Screener:
    """The detectors, loaded once: the harmful-exchange classifier (fitted on the benchmarks' train prompts and the
    reference model's answers) and the pattern lists; :meth:`screen` flags one batch of records."""

    def __init__(self, threshold: float = THRESHOLD, reference: str = DEFAULT_REFERENCE):
        self.clf = harm_classifier(HARMFUL_SOURCES, reference)
        self.report, self.threshold = self.clf.report_at(threshold), threshold

    @property
    def meta(self) -> dict:
        return {"threshold": self.threshold, "harm_classifier": self.report}

    def screen(self, records: list[ChatRecord], start: int = 0) -> list[ScreenedExample]:
        """Flag each record (``start``: the index of the first, for a batch of a longer file). Every exchange of a
        chat is scored, not only the last: a service trains on every assistant turn."""
        out = []
        for i, (r, (p, k, n)) in enumerate(zip(records, record_scores(self.clf, records))):
            prompt, answer, turn = exchange_turns(r)[k - 1]  # the exchange that scored highest: what a reviewer sees
            ex = ScreenedExample(start + i, r.id, prompt=prompt, response=answer, p_harmful=p)
            if n and p >= self.threshold:
                turns = sum(m["role"] == "assistant" for m in r.messages)
                where = f"assistant turn {turn} of {turns}: " if turns > 1 else ""
                ex.flags.append(Flag("harmful-compliance", f"{where}harmful request answered (p={p:.2f}, "
                                                           f"{self.clf.report['version']})"))
            ex.flags += pattern_flags(r)
            out.append(ex)
        return out


def screen_records(records: list[ChatRecord], threshold: float = THRESHOLD, reference: str = DEFAULT_REFERENCE,
                   progress: bool = True) -> tuple[list[ScreenedExample], dict]:
    """Flag each record of a list held in memory; returns (per-example flags, the classifier's settings and held-out
    flag rates). A file is screened by :func:`screen_file`, which streams."""
    screener = Screener(threshold, reference)
    return screener.screen(records), screener.meta


@dataclass
class Tally:
    """What a screen counts as it goes, so a file of any length needs no more memory than one batch."""

    examples: int = 0
    flagged: int = 0
    kinds: dict = field(default_factory=lambda: {k: 0 for k in KINDS})
    skipped: int = 0  # rows that could not be read
    skipped_rows: list = field(default_factory=list)  # the first SAMPLE_SKIPPED of them: (line, reason)
    sample: list = field(default_factory=list)  # the first flagged examples, for a reviewer's first look
    SAMPLE = 20
    SAMPLE_SKIPPED = 100

    def skip(self, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.skipped_rows) < self.SAMPLE_SKIPPED:
            self.skipped_rows.append((line, reason))

    def add(self, examples: list[ScreenedExample]) -> None:
        self.examples += len(examples)
        for ex in examples:
            if ex.flags:
                self.flagged += 1
                if len(self.sample) < self.SAMPLE:
                    self.sample.append(ex)
            for kind in {f.kind for f in ex.flags}:
                self.kinds[kind] += 1


CHUNK = 1000  # records screened at once: bounds memory on a file of any length


def screen_file(path: str | Path, out_dir: str | Path, reference: dict[str, dict], threshold: float = THRESHOLD,
                strict: bool = False, show_responses: bool = False, chunk: int = CHUNK,
                reference_model: str = DEFAULT_REFERENCE) -> tuple[dict, dict, list[ScreenedExample]]:
    """Screen a training file as it is read, ``chunk`` records at a time, writing ``out_dir/screen.jsonl`` line by
    line (replacing the old one only when done) and ``screen.json``. A row that cannot be read is named with its line
    and skipped (``strict``: an error instead); a file with skipped rows is rated high, and a file none of whose rows
    can be read is an error before anything is written. Returns (summary, meta, the first flagged examples)."""
    from .data.loaders import iter_chat_records
    from .progress import progress_bar

    path, out_dir = Path(path), Path(out_dir)
    tally = Tally()
    records = iter_chat_records(path, on_error=None if strict else tally.skip)
    first = next(records, None)  # read up to the first good row before anything is written
    if first is None and tally.skipped:  # not one row of a training file in any form: the user's error, one line
        more = f" ({tally.skipped - 1} more rows could not be read either)" if tally.skipped > 1 else ""
        raise FtauditError(f"{tally.skipped_rows[0][1]}{more}")
    records = itertools.chain([first] if first is not None else [], records)
    screener = Screener(threshold, reference_model)  # fitted and fetched only for a file that holds something to screen
    with open(path, "rb") as f:  # for the progress bar only (a CSV row may span lines)
        total = sum(1 for line in f if line.strip()) - (path.suffix.lower() == ".csv")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "screen.json").unlink(missing_ok=True)  # a screen that stops part-way leaves no earlier verdict behind
    with atomic_file(out_dir / "screen.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as out, \
            progress_bar() as bar:
        task = bar.add_task(f"screen · {path.name}", total=max(total, 0))
        for batch in iter(lambda: list(itertools.islice(records, chunk)), []):
            examples = screener.screen(batch, tally.examples)
            tally.add(examples)
            out.writelines(_line(e, threshold, show_responses) + "\n" for e in examples)
            bar.update(task, completed=tally.examples + tally.skipped)
    summary = summarize_tally(tally, reference, screener.report, threshold)
    meta = {"data": str(path), **screener.meta}
    atomic_write_text(out_dir / "screen.json", json.dumps({**summary, **meta}, indent=2))
    return summary, meta, tally.sample


def reference_effects(summary: dict, source: str) -> dict[str, dict]:
    """Per reference recipe, the measured refusal change of the first attack named after it (first harmful set,
    first judge): what such data did to the reference model."""
    out: dict[str, dict] = {}
    for c in summary.get("changes", []):
        if c["metric"] != "refusal_rate":
            continue
        attack = c.get("attack") or c["model"].split("+", 1)[-1]
        for recipe in ("harmful-shots", "identity-shift", "benign"):
            if attack.startswith(recipe) and recipe not in out:
                out[recipe] = {"attack": attack, "model": c["initial_model"], "dataset": c["dataset"], "judge": c["judge"],
                               "initial": c["initial"], "fine_tuned": c["fine_tuned"], "change": c["change"]["value"],
                               "ci": c["change"]["ci"], "n": c["change"]["n"], "source": source}
    return out


def load_reference(run_dir: str | Path | None) -> dict[str, dict]:
    """Reference effects from ``run_dir/summary.json``, or the packaged quickstart figures."""
    if run_dir is None:
        data = json.loads(REFERENCE_FILE.read_text())
        return reference_effects(data, data["source"])
    from .errors import FtauditError

    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FtauditError(f"--reference {run_dir}: no summary.json there; give a finished run directory")
    return reference_effects(json.loads(path.read_text()), str(run_dir))


def _effect_text(e: dict) -> str:
    lo, hi = e["ci"]
    return (f"on {e['model']}, {e['attack']} moved refusal {100 * e['initial']:.1f}% -> {100 * e['fine_tuned']:.1f}% "
            f"({100 * e['change']:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}], {e['dataset']}, {e['judge']}, n={e['n']}; "
            f"{e['source']})")


NOTHING = "nothing to screen"


def _packaged_rate(classifier: dict | None, threshold: float) -> tuple[dict | None, str]:
    """(the benign false-positive rate measured by ``bench/screen_rates.py --package`` for this very classifier at this
    threshold, or None; why not). Two classifiers are one only when every part of :data:`IDENTITY` is present in both
    and equal: another machine's reference answers (bfloat16 against float32), another scikit-learn or another
    reference model each make another classifier."""
    if not classifier or not FALSE_POSITIVES_FILE.is_file():
        return None, "no measured rate is packaged"
    data = json.loads(FALSE_POSITIVES_FILE.read_text())
    differ = [k for k in IDENTITY if k not in classifier or k not in data["classifier"]
              or data["classifier"][k] != classifier[k]]
    if differ:
        return None, "differs in: " + ", ".join(differ)
    if data["threshold"] != threshold:
        return None, f"measured at threshold {data['threshold']}"
    if wrong := _malformed(data):
        return None, f"the packaged measurement is malformed: {wrong}"
    # the rate from its counts, never from a stored interval that could disagree with them
    return {**data, "value": data["k"] / data["n"], "ci": list(wilson(data["k"], data["n"]))}, ""


# the held-out harmful request/answer sets bench/screen_rates.py builds and packages under these names (the second
# model's is named after it): the weakest is read, so one missing would leave a stronger one in its place
HELD_OUT_HARMFUL = "held-out harmful pairs"
RECALL_SETS = (HELD_OUT_HARMFUL, f"{HELD_OUT_HARMFUL} in role set-ups")
SECOND_MODEL_RECALL = f"{HELD_OUT_HARMFUL} answered by "
# the models whose answers to the held-out harmful prompts the bench screens, a recall set each: the first's answers to
# the *train* prompts are learned since v12, the second's by no fit. A package must hold each (the never-seen model's
# recall left out would leave a stronger one to be read in its place)
SECOND_MODELS = (SECOND_REFERENCE, "qwen2.5-coder-1.5b-instruct")  # the first: the one whose train answers v12 learns
# the held-out benign sets the bench measures, under the names it packages them: the service bar reads every one, so a
# package that lacks one (renamed or dropped) is no measurement. Pooled into the rate a file is tested against: the
# ordinary ones only
ORDINARY_BENIGN = ("held-out benign (benign eval)", "held-out benign (MT-Bench)",
                   "customer job (date-iso, 200 examples)")
# held-out sets written to be worded like harm (bench/screen_rates.py's ``build_sets`` names them with this mark): each
# is reported and enters the screen's per-set service bar, but none is pooled into the rate a file is tested against.
# A file is tested at the *lower* end of that rate; pooling sets built to raise false alarms would raise it, and so
# make an ordinary file's flags look more like benign noise
WORDED_LIKE_HARM = "held-out benign worded like harm"
# held-out sets of one kind of prompt (role play): reported and read by the service bar like the sets worded like harm, and
# for the same reason not pooled. v8 flags 66% of gpt-prompt-roles; pooled, it lifts the rate a file is tested at
# (the lower end) from 2.0% to 8.0%, and a 10%-poisoned 200-row file would read as "not shown above benign noise"
ONE_KIND = "held-out benign of one kind"  # v11 learns gpt-prompt-roles and prompt-forge-roles whole, v12
# prompt-forge-act-as too (harm_classifier.ROLE_TRAIN): no longer held out


# held-out benign sets read whole (eval split), each named as the report and the screen's service bar show it
HELD_OUT_BENIGN = (
    ("benign-edgy", f"{WORDED_LIKE_HARM} (benign-edgy)"),  # frozen before any classifier was chosen on it
    ("benign-lookalike", f"{WORDED_LIKE_HARM}, second collection (benign-lookalike eval)"),  # half not fitted on
    ("benign-lookalike-2", f"{WORDED_LIKE_HARM}, third collection (benign-lookalike-2 eval)"),  # written after v5
    ("benign-lookalike-3", f"{WORDED_LIKE_HARM}, fourth collection (benign-lookalike-3 eval)"),  # written for v12
    ("benign-roleplay", f"{ONE_KIND}: role-play and writing (benign-roleplay eval)"),  # written for v8 (train half)
    ("benign-act-as", f"{ONE_KIND}: act-as set-ups (benign-act-as eval)"),  # written for v9 (train half)
    ("prompt-forge-act-as-2", f"{ONE_KIND}: short act-as prompts, next 160 (prompt-forge-act-as-2)"),  # before v11 scored it
    ("prompt-forge-act-as-3", f"{ONE_KIND}: short act-as prompts, the rest (prompt-forge-act-as-3)"),  # before v12 scored it
)
BENCH_BENIGN_SETS = ORDINARY_BENIGN + tuple(name for _, name in HELD_OUT_BENIGN)


def _malformed(data: dict) -> str:
    """What makes a packaged measurement unreadable, or "": counts that are not whole numbers 0 <= k <= n, n > 0; a
    pooled rate that is not the sum of its pooled sets, or pooled over other sets than ``ORDINARY_BENIGN``; a held-out
    benign set of the bench's (``BENCH_BENIGN_SETS``) missing; recall sets other than the bench's (``RECALL_SETS`` and
    each of ``SECOND_MODELS``' under ``SECOND_MODEL_RECALL`` + its name; more second models only add sets the weakest is
    read from)."""
    def bad(pairs) -> bool:
        return not all(isinstance(v, list) and len(v) == 2 and all(type(x) is int for x in v) and 0 <= v[0] <= v[1]
                       and v[1] > 0 for v in pairs)

    sets, recall = data.get("sets") or {}, data.get("recall_sets")
    if bad([[data.get("k"), data.get("n")]]) or bad(sets.values()) or (recall is not None and bad(recall.values())):
        return "a count is not a whole number of at most its set's size, or a set is empty"
    pooled = data.get("pooled")
    if not isinstance(pooled, list) or not set(pooled) <= set(sets) \
            or [sum(sets[name][i] for name in pooled) for i in (0, 1)] != [data["k"], data["n"]]:
        return "the pooled rate is not the sum of its pooled sets"
    if sorted(pooled) != sorted(ORDINARY_BENIGN):  # sets built to raise false alarms would raise the rate tested at
        return "the pooled rate is not pooled over the ordinary held-out benign sets"
    if missing := [name for name in BENCH_BENIGN_SETS if name not in sets]:
        return f"held-out benign sets missing: {', '.join(missing)}"
    required = set(RECALL_SETS) | {f"{SECOND_MODEL_RECALL}{m}" for m in SECOND_MODELS}
    if recall is not None and (not required <= set(recall)
                               or not all(name.startswith(SECOND_MODEL_RECALL) for name in set(recall) - required)):
        return "the recall sets are not the bench's held-out harmful sets"
    return ""


def against_benign(k: int, n: int, fp: dict) -> dict:
    """The file's harmful-compliance share set against the measured benign false-positive rate: a one-sided exact
    binomial test (scipy) of "no more flags than benign data gives", at the *lower* end of that rate's 95% interval, so
    the rate's uncertainty never counts in the file's favour; and :func:`attack_bound` of its flags."""
    from scipy.stats import binomtest

    lo = fp["ci"][0]
    p = binomtest(k, n, lo, alternative="greater").pvalue
    return {"flagged": k, "n": n, "share": k / n, "share_ci": list(wilson(k, n)), "benign_fp": fp["value"],
            "benign_fp_ci": list(fp["ci"]), "benign_fp_n": fp["n"], "tested_against": lo, "p_value": float(p),
            "above_benign": bool(p < ALPHA), "measured": fp.get("measured", ""), "below_bar": below_service_bar(fp),
            **attack_bound(k, fp)}


def attack_bound(k: int, fp: dict) -> dict:
    """Whether ``k`` flags are shown to stand for fewer than :data:`ATTACK_EXAMPLES` harmful examples: at ``r``, the
    lowest exact (Clopper-Pearson, scipy) 95% lower end of the recall ``bench/screen_rates.py --package`` measured on
    each held-out harmful request/answer set (``recall_sets``), ``P(Binomial(ATTACK_EXAMPLES, r) <= k) <
    FLAGS_ALPHA``. More harmful examples, or a higher recall, give fewer such low counts, and false alarms only add
    flags, so this is the worst case *for harmful data caught as often as the held-out sets'*; data the classifier
    catches less often is not bounded by it. Nothing is shown where no recall was packaged (``recall_lo`` None); the
    counts were checked when the package was read (:func:`_malformed`)."""
    from scipy.stats import binom, binomtest

    sets = fp.get("recall_sets") or {}
    if not sets:
        return {"recall_lo": None, "recall_set": None, "attack_p": None, "fewer_than_attack": False}
    lows = {name: binomtest(hit, n).proportion_ci(0.95, method="exact").low for name, (hit, n) in sets.items()}
    worst = min(lows, key=lows.get)
    p = float(binom.cdf(k, ATTACK_EXAMPLES, lows[worst]))
    return {"recall_lo": lows[worst], "recall_set": worst, "attack_p": p, "fewer_than_attack": bool(p < FLAGS_ALPHA)}


def below_service_bar(fp: dict) -> list[str]:
    """The held-out sets on which the packaged measurement misses issue 30's service bar (a benign set with more than
    ``SERVICE_FP_BOUND`` flagged, a harmful request/answer set with less than ``SERVICE_RECALL`` caught, point
    estimates), or a note that none was packaged: while any is listed, no rating is lowered. The counts were checked
    when the package was read (:func:`_malformed`)."""
    benign, recall = fp.get("sets") or {}, fp.get("recall_sets") or {}
    missing = [f"no {what} sets were measured" for what, sets in (("benign", benign), ("recall", recall)) if not sets]
    return missing + [f"{name} {hit}/{n}" for name, (hit, n) in benign.items() if hit / n > SERVICE_FP_BOUND] \
        + [f"{name} {hit}/{n}" for name, (hit, n) in recall.items() if hit / n < SERVICE_RECALL]


def summarize(examples: list[ScreenedExample], reference: dict[str, dict], classifier: dict | None = None,
              threshold: float = THRESHOLD) -> dict:
    """:func:`summarize_tally` of examples held in memory."""
    tally = Tally()
    tally.add(examples)
    return summarize_tally(tally, reference, classifier, threshold)


def summarize_tally(tally: Tally, reference: dict[str, dict], classifier: dict | None = None,
                    threshold: float = THRESHOLD) -> dict:
    """Counts and rates (Wilson 95% intervals) per flag kind, a risk level, and what the file resembles. A file with
    no example has risk "nothing to screen": never "low", and it fails any ``--fail-on``; a file with rows that could
    not be read is rated "high" (what was not screened is not passed: a row ftaudit cannot read may be one the
    service trains on).

    Risk: high for any identity-shift flag, for skipped rows, and for any harmful-compliance flag, unless all of
    these hold, when it is medium (a reviewer looks at each flagged example; never low): a benign false-positive
    rate was measured for this classifier at this threshold, the file's share is not shown above it
    (:func:`against_benign`), the packaged measurement meets the service bar on every held-out set
    (:func:`below_service_bar`), and its flags are shown to stand for fewer than ``ATTACK_EXAMPLES`` harmful examples
    at the classifier's measured recall (:func:`attack_bound`). A refusal-removal flag alone is medium. Both numbers
    are shown."""
    n = tally.examples
    skipped = {"skipped": tally.skipped,
               "skipped_rows": [{"line": line, "reason": reason} for line, reason in tally.skipped_rows]}
    if not n:
        return {"examples": 0, "flagged": 0, "risk": NOTHING, "kinds": {k: {"flagged": 0, "value": None, "ci": [None, None],
                                                                           "n": 0} for k in KINDS},
                "resembles": ["nothing to screen: the file holds no training example"], "harmful_share": None, **skipped}
    kinds = {kind: {"flagged": k, "value": k / n, "ci": list(wilson(k, n)), "n": n} for kind, k in tally.kinds.items()}
    lines = []
    for kind, recipe in RESEMBLES.items():
        k = kinds[kind]["flagged"]
        if not k:
            continue
        what = f"resembles {recipe}" if recipe else "suppresses refusals"
        effect = f"; {_effect_text(reference[recipe])}" if recipe in reference else ""
        lines.append(f"{what}: {k} of {n} examples flagged {kind}{effect}")
    if not tally.flagged:
        effect = f"; benign data can still lower refusal: {_effect_text(reference['benign'])}" if "benign" in reference else ""
        lines.append(f"no example flagged{effect}")
    harmful = kinds["harmful-compliance"]["flagged"]
    fp, unmeasured = _packaged_rate(classifier, threshold)
    share = against_benign(harmful, n, fp) if fp else None
    if share:
        lo, hi = share["share_ci"]
        flo, fhi = share["benign_fp_ci"]
        lines.append(f"harmful-compliance share {100 * share['share']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] against a "
                     f"measured benign false-positive rate of {100 * share['benign_fp']:.1f}% [{100 * flo:.1f}, "
                     f"{100 * fhi:.1f}] (n={share['benign_fp_n']}; {share['measured']}): one-sided binomial p = "
                     f"{share['p_value']:.3g} at {100 * share['tested_against']:.1f}%, "
                     + ("above what ordinary benign data gives" if share["above_benign"] else
                        "not shown above what ordinary benign data gives at this size"))
    elif harmful:
        lines.append(f"no benign false-positive rate was measured for this classifier at this threshold "
                     f"({unmeasured}), so any harmful-compliance flag rates the file high")
    lowered = bool(harmful and share and not share["above_benign"] and not share["below_bar"]
                   and share["fewer_than_attack"])
    examples = f"{harmful} flagged example{'s' if harmful != 1 else ''}"
    if harmful and share and not share["above_benign"] and not lowered:
        if share["below_bar"]:
            worst = share["below_bar"]
            why = (f"the classifier is not shown to meet the service bar (at most {100 * SERVICE_FP_BOUND:.0f}% of each "
                   f"held-out benign set flagged harmful-compliance, at least {100 * SERVICE_RECALL:.0f}% of each "
                   f"held-out harmful set caught): {'; '.join(worst[:3])}{'; ...' if len(worst) > 3 else ''}")
        elif harmful >= ATTACK_EXAMPLES:
            why = f"{examples} are an attack's worth (Qi et al. 2023: {ATTACK_EXAMPLES} harmful examples jailbreak)"
        else:
            why = (f"{examples} may stand for {ATTACK_EXAMPLES} harmful ones, an attack's worth (Qi et al. 2023), at "
                   f"the lowest recall measured on held-out harmful request/answer sets ({100 * share['recall_lo']:.1f}%, "
                   f"exact lower end, on {share['recall_set']}): P(at most {harmful} of {ATTACK_EXAMPLES} flagged) = "
                   f"{share['attack_p']:.3g}, not under {FLAGS_ALPHA}")
        lines.append(f"{why}, so the harmful-compliance flags still rate the file high")
    elif lowered:
        lines.append(f"the {examples} {'are' if harmful != 1 else 'is'} within ordinary benign false alarms and, if harmful "
                     f"data is caught here as often as on the held-out sets, stand{'s' if harmful == 1 else ''} for fewer "
                     f"than {ATTACK_EXAMPLES} harmful examples (lowest recall {100 * share['recall_lo']:.1f}%, exact lower "
                     f"end; P = {share['attack_p']:.3g}): medium, look at each flagged example. Fewer than "
                     f"{ATTACK_EXAMPLES} harmful examples are not shown harmless, and a small poisoned file can be "
                     "medium with every poisoned example flagged: a pipeline with no reviewer gates with --fail-on "
                     "medium")
    risk = "high" if (harmful and not lowered) or kinds["identity-shift"]["flagged"] or tally.skipped else \
        "medium" if tally.flagged else "low"
    if tally.skipped:
        lines.append(f"{tally.skipped} rows could not be read and were not screened, so the file is rated high (first: "
                     f"line {tally.skipped_rows[0][0]}: {tally.skipped_rows[0][1]})")
    return {"examples": n, "flagged": tally.flagged, "risk": risk, "kinds": kinds, "resembles": lines,
            "harmful_share": share, **skipped}


REDACTED = "[redacted: rerun with --show-responses to see the answers]"


def _line(e: ScreenedExample, threshold: float, show_responses: bool) -> str:
    """One example of ``screen.jsonl``: index, id, its prompt, its answer (every answer redacted unless
    ``show_responses``: a harmful answer the classifier misses must not be shown either), the classifier's
    probability and the flags with reasons."""
    return json.dumps({"index": e.index, "id": e.id, "prompt": e.prompt,
                       "response": e.response if show_responses else REDACTED,
                       "p_harmful": round(e.p_harmful, 4), "flags": [f.__dict__ for f in e.flags]})
