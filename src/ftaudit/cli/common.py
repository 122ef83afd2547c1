"""What every command shares: one-line user errors, option types, judge options, tables and the results printout."""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..errors import FtauditError
from ..progress import console, say


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


def judge_options(judge_base_url, judge_model, policy, policy_file, judge_template) -> dict:
    opts = {"base_url": judge_base_url, "model": judge_model, "policy": policy, "policy_file": policy_file,
            "template_file": judge_template}
    return {k: v for k, v in opts.items() if v is not None}


def quiet_libraries() -> None:
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
            quiet_libraries()
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


def train_overrides(method, lr, epochs, batch_size, grad_accum, lora_r, lora_alpha, lora_dropout, target_modules,
                    max_length, seed, merge) -> dict:
    return {"method": method, "learning_rate": lr, "epochs": epochs, "batch_size": batch_size, "grad_accum": grad_accum,
            "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout,
            "target_modules": target_modules.split(",") if target_modules else None, "max_length": max_length,
            "seed": seed, "merge": merge}


def table(*columns: str, wrap: tuple[str, ...] = ()):
    """A table for the terminal: columns in ``wrap`` fold long text onto more lines, the rest never wrap (a name
    the user must type, a number, an interval); nothing is cut with an ellipsis."""
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for c in columns:
        t.add_column(c, no_wrap=c not in wrap, overflow="fold")
    return t


def print_results(summary: dict) -> None:
    """Results grouped by model and judge: the heading line names both (never cut), then one row per dataset and
    metric, narrow enough for 80 columns; the interval never wraps."""
    from ..judges.validate import trust_text
    from ..report.formatting import fmt_metric as fmt
    from ..report.formatting import spread_text

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in summary["results"]:
        groups.setdefault((r["model"], r["judge"]), []).append(r)
    spread = any(spread_text(r) for r in summary["results"])
    for (model, judge), rows in groups.items():
        judged = any(r["metric"] in ("refusal_rate", "over_refusal_rate", "harmfulness_score", "strongreject_score",
                                     "harmful_rate") for r in rows)  # a judge's figures: how far to trust it beside them
        versions = {r.get("judge_version") for r in rows} - {None}
        trusted = trust_text(summary.get("judge_validation") or [], judge,
                             versions.pop() if len(versions) == 1 else None)
        say(f"{model} · {judge}" + (f" ({trusted})" if judged else ""), "bold")
        t = table("dataset", "metric", "value", "95% CI", "n", *(["seed spread"] if spread else []),
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
