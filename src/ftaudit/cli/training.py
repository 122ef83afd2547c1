"""Commands that make models: align, attack, defend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import FtauditError
from ..progress import say
from .app import app
from .common import BatchSize, Epochs, Lr, Method, Seed, train_overrides, user_errors


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
    from .. import api

    api.align(model, out, params={"n_harmful": n_harmful, "n_benign": n_benign}, seed=seed,
              train={"learning_rate": lr, "epochs": epochs, "batch_size": batch_size, "method": method})
    say(f"aligned model: {out / 'model'}")


@app.command()
@user_errors
def attack(recipe: Annotated[str, typer.Option(help="harmful-shots | identity-shift | benign | task (a customer job) | "
                                                   "refusal-ablation (a weight edit: Arditi et al. 2024, no training)")],
           model: Annotated[str, typer.Option(help="The (aligned) model to attack.")],
           out: Annotated[Path, typer.Option(help="Output directory (adapter in OUT/model).")] = Path("runs/attack"),
           shots: Annotated[int, typer.Option(min=1, help="harmful-shots: number of examples (10/50/100 in the study).")] = 10,
           answers: Annotated[Optional[Path], typer.Option(help="harmful-shots: JSONL of compliant answers you supply.")] = None,
           reference_model: Annotated[Optional[str], typer.Option(help="Model that generates answers at run time.")] = None,
           dataset: Annotated[str, typer.Option(help="benign: alpaca | dolly | llava (hub) | benign (offline).")] = "benign",
           data_source: Annotated[Optional[str], typer.Option(help="benign hub data: another hub id, or a local copy in "
                                                                  "the hub's format (dataset folder; the JSON for llava).")] = None,
           n: Annotated[int, typer.Option(min=1, help="benign / identity-shift / task: number of examples "
                                                      "(identity-shift has 10).")] = 50,
           task: Annotated[str, typer.Option(help="task: the customer task (date-iso).")] = "date-iso",
           poison: Annotated[float, typer.Option(min=0, max=0.99, help="task: share of the job replaced by harmful "
                                                                       "prompts with compliant answers.")] = 0.0,
           method: Annotated[Optional[str], typer.Option(help="lora (default) | qlora (4-bit base, bitsandbytes) | full")] = None,
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
    Example: ftaudit attack --recipe task --task date-iso --n 200 --poison 0.1 --model runs/align/model --reference-model smollm2-135m-instruct --out runs/job
    Example: ftaudit attack --recipe refusal-ablation --model qwen2.5-coder-0.5b-instruct --out runs/abliterated
    """
    from .. import api
    from ..recipes.edits import is_weight_edit
    from ..seeds import parse_seeds

    params = {"harmful-shots": {"shots": shots, "answers": str(answers) if answers else None},
              "identity-shift": {"n": min(n, 10)}, "benign": {"dataset": dataset, "n": n, "source": data_source},
              "task": {"task": task, "n": n, "poison": poison, "answers": str(answers) if answers else None}}.get(recipe, {})
    runs = parse_seeds(seeds)
    train = {**train_overrides(method, lr, epochs, batch_size, grad_accum, lora_r, lora_alpha, lora_dropout, target_modules,
                               max_length, seed, merge or None),
             "distributed": distributed, "num_processes": num_processes, "checkpoint_steps": checkpoint_steps}
    for s in runs or [seed]:  # one call per seed, so each seed's line comes as it finishes
        [m] = api.attack(recipe, model, out, params=params, train=train, reference_model=reference_model, seed=s,
                         seeds=[s] if runs else None)
        edit = "; a weight edit, the direction it chose is in ftaudit_model.json" if is_weight_edit(recipe) else ""
        say(f"attacked model, seed {s} ({m.train_seconds:.0f} s, {m.train_tokens} tokens{edit}): {m.path}")


@app.command()
@user_errors
def defend(defense: Annotated[str, typer.Option(help="vaccine | booster | safety-recovery | safelora | constrained-sft | lisa | safety-mix | "
                                                     "data-filter (see `ftaudit defend --help` and docs/defenses.md).")],
           model: Annotated[str, typer.Option(help="The released model the defense protects (or trains from).")],
           out: Annotated[Path, typer.Option(help="Where the defended model, adapter or data is written.")],
           param: Annotated[Optional[list[str]], typer.Option(help="A defense parameter, KEY=VALUE (YAML value); "
                                                                   "repeatable, e.g. --param ratio=0.3.")] = None,
           data: Annotated[Optional[Path], typer.Option(help="data / fine-tuning defenses: the training data "
                                                            "(JSONL chat records).")] = None,
           adapter: Annotated[Optional[Path], typer.Option(help="post-hoc defenses: the LoRA adapter to repair.")] = None,
           unaligned: Annotated[Optional[str], typer.Option(help="The model before safety training (safelora's "
                                                                 "V = aligned - unaligned; vaccine aligns it).")] = None,
           reference_model: Annotated[Optional[str], typer.Option(help="booster, safety-recovery: the model that "
                                                                      "answers harmful train prompts at run time.")] = None,
           lr: Lr = None, epochs: Epochs = None, batch_size: BatchSize = None, seed: Seed = 0):
    """Apply one defense and write what it defends, with its cost record (OUT/defense.json).

    alignment (vaccine, booster, safety-recovery): hardens --model, or aligns --unaligned with the align recipe's data under the defense.
    data (data-filter): screens --data into OUT/train_data.jsonl.  fine-tuning (safety-mix, constrained-sft, lisa): trains
    --model on --data under the defense.  post-hoc (safelora): repairs --adapter into OUT.

    \b
    Example: ftaudit defend --defense vaccine --model smollm2-135m-instruct --out runs/vaccine
    Example: ftaudit defend --defense booster --model runs/align/model --unaligned smollm2-135m-instruct --reference-model smollm2-135m-instruct --out runs/booster
    Example: ftaudit defend --defense safety-recovery --model runs/align/model --unaligned smollm2-135m-instruct --reference-model smollm2-135m-instruct --out runs/recovery
    Example: ftaudit defend --defense safelora --model runs/align/model --unaligned smollm2-135m-instruct --adapter runs/hs10/model --out runs/hs10-safelora
    Example: ftaudit defend --defense data-filter --model runs/align/model --data customer.jsonl --out runs/screened
    """
    import yaml

    from ..defenses.run import defend as run_defense
    from ..models import check_model_location

    params = {}
    for item in param or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise FtauditError(f"bad --param '{item}': write KEY=VALUE, e.g. --param ratio=0.3")
        params[key] = yaml.safe_load(value)
    check_model_location(model, unaligned, reference_model)
    train = {k: v for k, v in {"learning_rate": lr, "epochs": epochs, "batch_size": batch_size}.items() if v is not None}
    record = run_defense(defense, model, out, params=params, data=data, adapter=adapter, unaligned=unaligned,
                         train=train, seed=seed, reference_model=reference_model)
    say(f"{record['label']} ({record['stage']}): {record['seconds']:.0f} s; cost record {out / 'defense.json'}")
