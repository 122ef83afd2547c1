"""Commands that run whole audits: quickstart and experiment specs (run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..errors import FtauditError
from ..progress import console, say
from .app import app
from .common import PricePerHour, print_results, user_errors


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
               price_per_device_hour: PricePerHour = None,
               harm_judge: Annotated[str, typer.Option(help="Harm judge for Qi et al.'s harmfulness score and rate "
                                                           "on the harmful sets (an LLM judge on offline weights, "
                                                           "minutes on a CPU); none to skip. Default: "
                                                           "harmfulness-local (off with --smoke).")] = "default",
               harm_judge_model: Annotated[Optional[str], typer.Option(help="The harm judge's model (default: "
                                                                          "the judge's own: qwen2.5-coder-0.5b-instruct for "
                                                                          "harmfulness-local).")] = None):
    """The whole audit on one model: safety-train it if it needs it, attack it 3 ways, evaluate, report.

    The embedded default SmolLM2-135M refuses nothing, so `--align auto` safety-trains it first; the
    vendor-aligned Qwen2.5-Coder-0.5B-Instruct refuses about 60% and is attacked as shipped.

    \b
    Example: ftaudit quickstart --out runs/quickstart
    Example: ftaudit quickstart --model qwen2.5-coder-0.5b-instruct --out runs/quickstart-qwen
    Example: ftaudit quickstart --out runs/quickstart-seeds --seeds 0,1,2
    Example: ftaudit quickstart --out runs/quickstart-fast --harm-judge none
    """
    from .. import api
    from ..seeds import parse_seeds

    print_results(api.quickstart(out, model=model, align=align, seeds=parse_seeds(seeds), reference_model=reference_model,
                                 smoke=smoke, price_per_device_hour=price_per_device_hour,
                                 show_responses=show_responses, harm_judge=None if harm_judge == "none" else harm_judge,
                                 harm_judge_model=harm_judge_model).summary)


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
    from .. import api
    from ..report.formatting import tamper_line
    from ..seeds import parse_seeds

    chosen = parse_seeds(seeds) if seeds else None
    if dry_run:
        print_plan(api.plan(spec, seeds=chosen))
        return
    if out is None:
        raise FtauditError("give --out DIR (the run directory), or --dry-run to see the plan")
    summary = api.run_spec(spec, out, seeds=chosen, executor=executor, address=ray_address).summary
    print_results(summary)
    for t in summary["tamper_resistance"]:
        say(f"tamper resistance: {tamper_line(t)}")


def print_plan(p: dict) -> None:
    """The dry run's points (name, defense, seed, budget, identity, curve) and how many trainings and evaluations."""
    for r in p["points"]:
        budget = "no size" if r["examples_x_epochs"] is None else f"{r['examples_x_epochs']:g} examples x epochs"
        repairs = "" if r["trains"] else ", repairs the undefended point's weights"
        console.print(f"{escape(r['name'])}\n    defense {escape(r['defense'])}{repairs} · seed {r['seed']} · {budget} · "
                      f"identity {r['identity']} · curve {r['curve']}", highlight=False, soft_wrap=True)
    search = f", {p['search_trials']} of the evaluations search trials" if p["search_trials"] else ""
    say(f"{len(p['points'])} attacked models: about {p['trainings']} trainings and {p['evaluations']} evaluations{search} "
        "(cached ones are skipped when it runs). Nothing was written (--dry-run).", "bold")
