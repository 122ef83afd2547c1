"""Commands that evaluate and report: eval, report, judge, and the judges group (list, validate, compare)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..atomic import run_dir_lock
from ..defaults import DEFAULT_EVAL_JUDGES
from ..errors import FtauditError
from ..progress import console, say
from .app import app, judges_app
from .common import (JudgeBaseUrl, JudgeModel, JudgeTemplate, Policy, PolicyFile, judge_options, print_results, table,
                     user_errors)


@app.command("eval")
@user_errors
def eval_cmd(model: Annotated[str, typer.Option(help="Model or adapter directory to evaluate.")],
             out: Annotated[Path, typer.Option(help="Run directory (store, summary.json, reports).")],
             dataset: Annotated[Optional[list[str]], typer.Option("--dataset", "-d", help="Harmful set NAME[:SPLIT][@N] or file; repeatable. Default: advbench@40, harmbench@40 (none when only --capability is given).")] = None,
             benign: Annotated[Optional[list[str]], typer.Option(help="Benign set for over-refusal; repeatable. Default: benign@40.")] = None,
             capability: Annotated[Optional[list[str]], typer.Option(help="mmlu | benign-nll | mtbench | lmeval:TASK | task:NAME (a customer task, e.g. task:date-iso); repeatable.")] = None,
             limit: Annotated[Optional[int], typer.Option(min=1, help="Capability items to score (MMLU: stratified over subjects).")] = None,
             shots: Annotated[int, typer.Option(min=0, max=5, help="MMLU few-shot examples (0-5, never scored items).")] = 0,
             name: Annotated[Optional[str], typer.Option(help="Name shown in reports (default: directory name).")] = None,
             judge: Annotated[list[str], typer.Option(help="Safety judges (see `ftaudit judges list`); repeatable. "
                                                          "Default: keyword and refusal-cues.")] = list(DEFAULT_EVAL_JUDGES),
             judge_base_url: JudgeBaseUrl = None, judge_model: JudgeModel = None,
             lmeval_include: Annotated[Optional[Path], typer.Option(help="Folder of local lm-eval task YAMLs.")] = None,
             policy: Policy = "llama2", policy_file: PolicyFile = None, judge_template: JudgeTemplate = None,
             column: Annotated[Optional[str], typer.Option(help="Prompt column of CSV/JSON(L) dataset files (default: prompt, goal, behavior, ...).")] = None,
             system_prompt: Annotated[Optional[str], typer.Option(help="System prompt for every evaluation prompt.")] = None,
             max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens generated per response (greedy).")] = 32,
             batch_size: Annotated[Optional[int], typer.Option(min=1, help="Most prompts generated together (speed only; "
                                                                 "default: 40 on CPU, 256 or what fits on a GPU).")] = None,
             dtype: Annotated[Optional[str], typer.Option(help="Compute dtype of local generation: auto (bfloat16 where "
                                                              "this machine runs it natively, else float32) | float32 | "
                                                              "bfloat16 | float16; recorded in the results' identity. "
                                                              "Default: the weights' own, except bfloat16 on a GPU that "
                                                              "runs it natively, float16 for a bf16 checkpoint on one "
                                                              "that does not, float32 for a half-precision checkpoint on "
                                                              "a CPU that emulates it (docs/speed.md).")] = None,
             show_responses: Annotated[bool, typer.Option(help="Show responses to harmful prompts in the report "
                                                               "(redacted by default).")] = False):
    """Generate (greedy, batched) on evaluation prompts, judge, compute metrics, write the report.

    A prompt longer than the model's context is skipped and counted (prompt_too_long_rate), never truncated; an
    empty response is its own outcome (empty_response_rate), never counted as compliance.

    \b
    Example: ftaudit eval --model runs/hs10/model --dataset advbench@60 --dataset harmbench --out runs/eval-hs10
    Example: ftaudit eval --model smollm2-135m-instruct --capability mmlu --limit 200 --out runs/mmlu
    """
    from .. import api

    summary = api.evaluate(
        model, out, datasets=dataset, benign=benign, judges=judge,
        judge_options=judge_options(judge_base_url, judge_model, policy, policy_file, judge_template),
        capability=capability, capability_limit=limit, shots=shots,
        lmeval_include=str(lmeval_include) if lmeval_include else None, name=name, column=column,
        system_prompt=system_prompt, max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype,
        show_responses=show_responses).summary
    print_results(summary)


@app.command()
@user_errors
def prefill(model: Annotated[list[str], typer.Option(help="A model to attack, NAME=LOCATION or LOCATION; repeatable.")],
            reference_model: Annotated[str, typer.Option(help="Model whose compliant answers open the attacked model's "
                                                             "(generated at run time, never stored in the repo).")],
            out: Annotated[Path, typer.Option(help="Run directory (store, prefill.json, prefill.md).")],
            dataset: Annotated[Optional[list[str]], typer.Option("--dataset", "-d", help="Harmful set NAME[@N]; "
                                                                 "repeatable. Default: advbench@40, harmbench@40.")] = None,
            tokens: Annotated[str, typer.Option(help="Prefix lengths k in tokens, comma-separated.")] = "5,10,20,40",
            judge: Annotated[list[str], typer.Option(help="Judges of the continuation; repeatable.")] = list(DEFAULT_EVAL_JUDGES),
            max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens generated after the prefix (greedy).")] = 32,
            dtype: Annotated[Optional[str], typer.Option(help="Compute dtype of generation: auto | float32 | bfloat16 "
                                                             "| float16.")] = "auto",
            against: Annotated[Optional[list[str]], typer.Option(help="DEFENDED=UNDEFENDED (two --model names): the "
                                                                 "defended model's change against the undefended one "
                                                                 "at each k, prompt by prompt; repeatable.")] = None):
    """The prefilling attack (Qi et al. 2024): open each answer with the first k tokens of a compliant answer and let
    the model continue; refusal and attack success per k on the continuation, against the same prompts unprefilled.

    \b
    Example: ftaudit prefill --model aligned=runs/align/model --model hs10=runs/hs10/model --reference-model smollm2-135m-instruct --out runs/prefill
    Example: ftaudit prefill --model aligned=runs/align/model --model recovery=runs/recovery/model --against recovery=aligned --reference-model qwen2.5-coder-0.5b-instruct --out runs/prefill-recovery
    """
    from .. import api

    try:
        ks = tuple(int(t) for t in tokens.split(","))
    except ValueError:
        raise FtauditError(f"bad --tokens '{tokens}': write whole numbers separated by commas, e.g. 5,10,20,40") from None
    models = {}
    for item in model:
        name, eq, location = item.partition("=")
        name, location = (name, location) if eq else (Path(item.rstrip("/")).name or item, item)
        if name in models:
            raise FtauditError(f"two --model entries are named '{name}'; write NAME=LOCATION")
        models[name] = location
    pairs = {}
    for item in against or []:
        defended, eq, undefended = item.partition("=")
        if not eq or not defended or not undefended:
            raise FtauditError(f"bad --against '{item}': write DEFENDED=UNDEFENDED with two --model names")
        if defended in pairs:
            raise FtauditError(f"--against names '{defended}' twice; a defended model has one undefended twin")
        pairs[defended] = undefended
    rows = api.prefill(models, out, reference_model=reference_model, datasets=dataset, judges=judge, tokens=ks,
                       max_new_tokens=max_new_tokens, dtype=dtype, against=pairs)
    console.print((out / "prefill.md").read_text())
    say(f"{len(rows)} rows: {out / 'prefill.json'}")


@app.command()
@user_errors
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory written by eval, run or quickstart.")],
           show_responses: Annotated[bool, typer.Option(help="Show responses to harmful prompts (redacted by default).")] = False,
           force: Annotated[bool, typer.Option(help="Replace a report even when the store gives fewer results "
                                                    "(the old one is kept as summary.previous.json).")] = False):
    """Re-render summary.json, report.md and report.html from a run's store (no generation).

    A store that is missing, empty or damaged is refused, and a report is never replaced by one with fewer
    results unless --force is given.

    \b
    Example: ftaudit report runs/quickstart
    """
    from ..report.experiment import report_experiment

    if not run_dir.is_dir():
        raise FtauditError(f"{run_dir} is not a run directory" + (" (it is a file)" if run_dir.exists() else ""))
    with run_dir_lock(run_dir):
        summary = report_experiment(run_dir, show_responses, force=force, existing=True)
    print_results(summary)


@app.command("judge")
@user_errors
def judge_cmd(input: Annotated[Path, typer.Option("--input", help="JSONL or CSV with prompt and response columns.")],
              out: Annotated[Path, typer.Option(help="Output JSONL: input rows + judge, judge_version and the judge's fields.")],
              judge: Annotated[Optional[str], typer.Option(help="Judge name (see `ftaudit judges list`). Default: "
                                                                "the best validated offline refusal judge.")] = None,
              judge_base_url: JudgeBaseUrl = None, judge_model: JudgeModel = None, policy: Policy = "llama2",
              policy_file: PolicyFile = None, judge_template: JudgeTemplate = None,
              force: Annotated[bool, typer.Option(help="Replace an existing --out that is not an earlier output of "
                                                       "this command.")] = False):
    """Score (prompt, response) pairs produced anywhere; refusal judges write `refused`, harm judges `score`.

    An empty response is not judged: it gets label "empty" and neither refused nor score.

    \b
    Example: ftaudit judge --input outputs.jsonl --out judged.jsonl
    Example: ftaudit judge --judge keyword --input outputs.jsonl --out judged.jsonl
    """
    from ..judges import check_judges
    from ..judges.run import judge_file
    from ..judges.validate import best_offline_refusal_judge, trust_text

    options = judge_options(judge_base_url, judge_model, policy, policy_file, judge_template)
    if judge is None:
        judge, row = best_offline_refusal_judge()
        say(f"judge: {judge}, the best validated offline refusal judge ({trust_text([row], judge)})")
    check_judges([judge], options)
    n = judge_file(judge, input, out, options, force=force)
    say(f"judged {n} rows with {judge}: {out}")


@judges_app.command("list")
@user_errors
def judges_list():
    """Name every judge, what it measures and what it needs (offline, hub, api).

    \b
    Example: ftaudit judges list
    """
    from ..judges import JUDGES, shared_judge
    from ..judges.validate import best_offline_refusal_judge

    try:
        default, _ = best_offline_refusal_judge()
    except FtauditError as exc:  # the list is still worth printing; the default stays unnamed
        default = None
        say(f"no default judge could be chosen: {exc}", "yellow")
    t = table("name", "version", "needs", "what", wrap=("version", "what"))
    for name, cls in sorted(JUDGES.items()):
        version = shared_judge(name).version if cls.needs == "offline" and cls.measures == "refusal" else cls.version
        mark = " (default)" if name == default else ""
        t.add_row(*(escape(x) for x in (name + mark, version, cls.needs, cls.description)))
    console.print(t)
    if default:
        say(f"default for `ftaudit judge`: {default}, the offline refusal judge that agrees best with people "
            "(`ftaudit judges validate`)")


@judges_app.command("validate")
@user_errors
def judges_validate(judge: Annotated[Optional[list[str]], typer.Option(help="Judges to validate; repeatable. Default: "
                                                                          "every offline refusal judge.")] = None,
                    label_set: Annotated[Optional[list[str]], typer.Option("--set", help="Refusal label sets: "
                                                                           "pyrit-refusal (105 human labels), "
                                                                           "pyrit-refusal-extra (64), uncensorbench "
                                                                           "(300 written replies); repeatable. "
                                                                           "Default: all.")] = None,
                    labels: Annotated[Optional[Path], typer.Option(help="Your own refusal labels: JSONL or CSV with "
                                                                        "prompt, response and label columns.")] = None,
                    limit: Annotated[Optional[int], typer.Option(min=1, help="Harm judges: replies per harm category "
                                                                             "(8 categories; default all 604).")] = None,
                    judge_base_url: JudgeBaseUrl = None, judge_model: JudgeModel = None, policy: Policy = "llama2",
                    policy_file: PolicyFile = None, judge_template: JudgeTemplate = None):
    """Agreement of judges with people, with 95% intervals and n, per judge and label set.

    Refusal judges: accuracy, precision, recall and Cohen's kappa on labelled replies (never on a set the judge
    was trained on). Harm judges (--judge-model names the model a local classifier or an API judge runs on):
    Spearman correlation with pyrit's human harm scores, and accuracy and kappa of harmful (score >= 0.5).

    \b
    Example: ftaudit judges validate
    Example: ftaudit judges validate --judge keyword --labels my-labels.csv
    Example: ftaudit judges validate --judge harmbench-cls --judge-model smollm2-135m-instruct --limit 10
    """
    from .. import api

    rows = api.validate_judges(judge, sets=label_set, labels=labels, limit=limit,
                               judge_options=judge_options(judge_base_url, judge_model, policy, policy_file, judge_template))
    t = table("judge", "label set", "n", "measure", "value", "95% CI")
    for r in rows:
        head = [escape(r["judge"]), escape(r["set"]), str(r["n"])]
        if not r["held_out"] and r.get("unparseable"):
            t.add_row(*head, "unparseable", str(r["unparseable"]), "all left out", end_section=True)
            continue
        if not r["held_out"]:
            t.add_row(*head, "skipped*", "", "", end_section=True)
            t.caption = "* the judge was trained on this set, so it is not a validation"
            continue
        measures = ("spearman", "accuracy", "kappa") if "spearman" in r else ("accuracy", "precision", "recall", "kappa")
        measures += ("spearman_expected",) if "spearman_expected" in r else ()
        lines = [(k, r[k], r[f"{k}_ci"]) for k in measures]
        lines += [(f"spearman {c}", m["spearman"], m["spearman_ci"]) for c, m in r.get("categories", {}).items()]
        for i, (k, v, ci) in enumerate(lines):
            value, ci = ("undefined", "") if v is None or math.isnan(v) else \
                (f"{v:.3f}", escape(f"[{ci[0]:.2f}, {ci[1]:.2f}]"))  # NaN: a constant judge's Spearman
            t.add_row(*(head if i == 0 else ["", "", ""]), k, value, ci, end_section=False)
        speed = r.get("speed", {})
        t.add_row("", "", "", "rows/s", f"{speed['rows_per_s']:.3g}" if "rows_per_s" in speed else "",
                  f"{speed.get('judged_now', 0)} judged now" + ("" if "rows_per_s" in speed else ", the rest cached"),
                  end_section=True)
        if r.get("constant"):
            t.add_row("", "", "", "constant", escape(r["constant"]), "every verdict the same", end_section=True)
        if r.get("unparseable"):
            t.add_row("", "", "", "unparseable", str(r["unparseable"]), "left out", end_section=True)
    console.print(t)


@judges_app.command("compare")
@user_errors
def judges_compare(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]):
    """Pairwise agreement and Cohen's kappa between judges that scored the same responses (also in the report).

    \b
    Example: ftaudit judges compare runs/quickstart
    """
    from ..judges.run import compare_run

    rows = compare_run(run_dir)
    if not rows:
        raise FtauditError(f"{run_dir}: fewer than two refusal judges scored the same responses; eval with --judge A --judge B")
    t = table("judge A", "judge B", "n", "agreement", "kappa")
    for r in rows:
        t.add_row(escape(r["judge_a"]), escape(r["judge_b"]), str(r["n"]), f"{r['accuracy']:.3f}", f"{r['kappa']:.3f}")
    console.print(t)
