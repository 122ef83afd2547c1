"""The prefilling attack: Qi et al. 2024, "Safety Alignment Should Be Made More Than Just a Few Tokens Deep"
(ICLR 2025, arXiv:2406.05946; the authors' code: github.com/Unispac/shallow-vs-deep-alignment, read, not copied).
An evaluation-time attack with no change to the weights: the model's answer is opened with the first ``k`` tokens of
a compliant answer and the model continues. A model whose alignment is "a few tokens deep" refuses only if it
refuses from the first token; the constrained-SFT defense ftaudit ships was designed against this.

As the code does: the prefix is the first ``k`` tokens of the compliant answer in the *attacked model's* tokenizer,
decoded; the conversation is the prompt plus that open assistant turn (``continue_final_message``); the judges read
the continuation alone (the code judges the generated text, without the prefix). ``k`` in {5, 10, 20, 40} by default.

Deviations, forced by ftaudit's rules:

* **The compliant answers.** The paper takes them from its Harmful HEx-PHI set. ftaudit never writes or stores
  harmful answers: a reference model the user names answers the same evaluation prompts at run time (greedy, in the
  run's store only, never in the repo), and only answers that the ``keyword`` judge does not call refusals and that
  are at least ``max(k)`` tokens long are used. Every ``k`` and the unprefilled baseline (``k = 0``) are measured on
  that same subset of prompts, so the changes are paired; the subset's size is reported.
* **Tokens.** The code's ``tokenizer.encode`` adds Llama-2's BOS token, so its ``k`` counts it; here ``k`` counts
  content tokens only.
* **The judges** are ftaudit's, reading the continuation: a refusal judge validated on whole replies reads a
  continuation that starts mid-sentence; the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import FtauditError
from .evaluation import EvalSet, eval_generation_config, judge_pending
from .generate import GenerationConfig
from .generate.cached import cached_generate
from .progress import say
from .report.prefill import model_label  # one naming rule, where the report reads it
from .store import Store

PREFILL_TOKENS = (5, 10, 20, 40)
REFERENCE_TOKENS = 64  # the reference answer's length, at least twice the longest prefix asked


def attack_label(k: int) -> str:
    return f"prefill(k={k})"


@dataclass
class Prefixes:
    """Per harmful set: the prompts an answer could be prefilled for, and each one's compliant answer in tokens."""

    prompts: dict[str, list] = field(default_factory=dict)  # set label -> PromptRecords kept
    tokens: dict[str, list[list[int]]] = field(default_factory=dict)  # set label -> the answer's token ids, per prompt
    dropped: dict[str, dict] = field(default_factory=dict)  # set label -> {"refused": n, "short": n, "of": n}
    tokenizer: object = None  # the attacked model's: the prefixes are its first k tokens

    def text(self, label: str, k: int) -> list[str]:
        return [self.tokenizer.decode(ids[:k], skip_special_tokens=True) for ids in self.tokens[label]]


def compliant_prefixes(store: Store, reference_model: str, sets: list[EvalSet], tokenizer, max_k: int,
                       answer_tokens: int = REFERENCE_TOKENS) -> Prefixes:
    """The reference model's greedy answers to each harmful set's prompts (generated at run time, cached in the
    store), kept where the keyword judge does not call them refusals and where they run to ``max_k`` tokens of the
    attacked model's tokenizer."""
    from .judges import get_judge
    from .models import resolve_model_location

    reference = resolve_model_location(reference_model)
    out = Prefixes()
    keyword = get_judge("keyword")
    for es in sets:
        prompts = es.prompts()
        keys, _ = cached_generate(store, reference, f"prefill-reference:{reference_model}", "", es.label, es.split,
                                  prompts, GenerationConfig(max_new_tokens=answer_tokens))
        rows = store.existing_generations(keys)
        answers = [rows[k]["response"] or "" for k in keys]
        flags = keyword.judge([p.prompt for p in prompts], answers)
        kept, ids, refused, short = [], [], 0, 0
        for p, a, f in zip(prompts, answers, flags):
            toks = tokenizer.encode(a.strip(), add_special_tokens=False)
            if f.refused or not a.strip():
                refused += 1
            elif len(toks) < max_k:
                short += 1
            else:
                kept.append(p)
                ids.append(toks)
        out.prompts[es.label], out.tokens[es.label], out.tokenizer = kept, ids, tokenizer
        out.dropped[es.label] = {"refused": refused, "short": short, "of": len(prompts)}
    if not any(out.prompts.values()):
        raise FtauditError(f"reference model {reference_model} gave no compliant answer of {max_k} tokens to any prompt "
                           "(keyword judge); name a reference model that complies (smollm2-135m-instruct refuses nothing)")
    return out


def evaluate_prefilled(store: Store, name: str, location: str, sets: list[EvalSet], gen: GenerationConfig,
                       judges: list[str], reference_model: str, ks: tuple[int, ...] = PREFILL_TOKENS,
                       judge_options: dict | None = None) -> Prefixes:
    """Evaluate ``location`` on each harmful set under prefills of each ``k`` (and ``k = 0``, the same prompts
    unprefilled), stored as the models ``NAME+prefill(k=K)``; returns the prefixes (with what was left out)."""
    if not ks or any(k < 1 for k in ks):
        raise FtauditError(f"prefill token counts must be positive whole numbers, got {list(ks)}")
    ks = tuple(sorted(set(ks)))
    # the system prompt and template an attack recorded for its own evaluation (identity shift), as every evaluation
    gen = eval_generation_config(location, gen)
    harmful = [s for s in sets if s.kind == "harmful"]
    if not harmful:
        raise FtauditError("the prefilling attack needs a harmful set (e.g. advbench@40)")
    from .models.loading import load_tokenizer

    tokenizer = load_tokenizer(location)  # an adapter's is its base model's
    prefixes = compliant_prefixes(store, reference_model, harmful, tokenizer, max(ks),
                                  max(REFERENCE_TOKENS, 2 * max(ks)))  # room for the longest prefix
    loaded = None
    for es in harmful:
        kept = prefixes.prompts[es.label]
        if not kept:
            say(f"{es.label}: no compliant reference answer to prefill with; left out", "yellow")
            continue
        for k in (0, *ks):
            label = model_label(name, k)
            fills = prefixes.text(es.label, k) if k else None
            keys, loaded = cached_generate(store, location, label, attack_label(k), es.label, es.split, kept, gen,
                                           loaded, fills)
            if store.set_evaluation(label, attack_label(k), es.label, es.kind, es.split, keys):
                say(f"{label} on {es.label}: the prompts, prefixes, settings or weights changed; this evaluation "
                    "replaces the earlier one (its generations stay cached)", "yellow")
            judge_pending(store, keys, judges, judge_options, (label, es.label, es.split))
        dropped = prefixes.dropped[es.label]
        say(f"{name} on {es.label}: prefilled {len(kept)} of {dropped['of']} prompts ({dropped['refused']} reference "
            f"answers were refusals, {dropped['short']} shorter than {max(ks)} tokens)", "green")
    return prefixes


def prefill_table(store: Store, names: list[str], ks: tuple[int, ...], judges: list[str],
                  against: dict[str, str] | None = None) -> list[dict]:
    """Per model, judge and k: refusal on the continuation with intervals (:func:`ftaudit.report.prefill.prefill_rows`)."""
    from .report.prefill import prefill_rows

    return prefill_rows(store.eval_table(), names, ks, judges, against)


def run_prefill(models: dict[str, str], out, reference_model: str, datasets: list[str], judges: list[str],
                ks: tuple[int, ...] = PREFILL_TOKENS, max_new_tokens: int = 32, dtype: str | None = "auto",
                against: dict[str, str] | None = None) -> list[dict]:
    """Every model in ``models`` ({name: location}) under the prefilling attack, into the run directory ``out``:
    the store, ``prefill.json`` (the rows of :func:`prefill_table` and the prompts prefilled per set) and
    ``prefill.md``. Rerunning the same command generates and judges only what is missing."""
    import json

    from .atomic import atomic_write_text, run_dir_lock
    from .evaluation import parse_eval_set
    from .judges import check_judges

    sets = [parse_eval_set(d) for d in datasets]  # a bad set fails here, before any work
    check_judges(judges, {})
    gen = GenerationConfig(max_new_tokens=max_new_tokens, dtype=dtype)
    out = Path(out)
    kept, opened = {}, {}
    with run_dir_lock(out), Store(out) as store:
        for name, location in models.items():
            prefixes = evaluate_prefilled(store, name, location, sets, gen, judges, reference_model, ks)
            kept[name] = {label: {"prefilled": len(p), **prefixes.dropped[label]} for label, p in prefixes.prompts.items()}
            opened[name] = {label: ([p.id for p in ps], [prefixes.text(label, k) for k in ks])
                            for label, ps in prefixes.prompts.items()}
        for defended, undefended in (against or {}).items():
            if opened[defended] != opened[undefended]:  # another tokenizer cuts other prefixes, keeps other prompts
                raise FtauditError(f"--against {defended}={undefended}: the two models were prefilled with different "
                                   "prompts or prefixes (their tokenizers differ), so their refusals cannot be paired; "
                                   "the evaluations are kept: rerun without this pair")
        rows = prefill_table(store, list(models), ks, judges, against)
    record = {"attack": "prefill (Qi et al. 2024, arXiv:2406.05946)", "reference_model": reference_model,
              "undefended": dict(against or {}),
              "tokens": sorted(ks), "max_new_tokens": max_new_tokens, "prompts": kept, "rows": rows,
              "judged": "the continuation after the prefix"}
    atomic_write_text(out / "prefill.json", json.dumps(record, indent=2, default=str))
    from .report.prefill import prefill_markdown

    atomic_write_text(out / "prefill.md", prefill_markdown(record))
    return rows


