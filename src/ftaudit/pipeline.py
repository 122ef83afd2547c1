"""The stages chained: align -> attack -> eval -> report. Each stage persists its outputs and skips
work whose inputs did not change, so rerunning a killed command resumes where it stopped."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from .align_decision import decide_alignment
from .atomic import atomic_write_text
from .defaults import DEFAULT_EVAL_JUDGES, DEFAULT_HARM_JUDGE, DEFAULT_HARM_JUDGE_MODEL
from .errors import FtauditError
from .evaluation import EvalSet, evaluate_model, parse_eval_set
from .fine_tune import aligned_model, run_recipe
from .generate import GenerationConfig
from .models.loading import read_marker
from .progress import say
from .seeds import seed_name
from .store import Store


class StageRunner:
    """Names the stage in progress and times it in the store, so a stop can say where it was and how to resume."""

    def __init__(self, store: Store):
        self.store = store
        self.current = "start"

    @contextmanager
    def __call__(self, name: str):
        self.current = name
        with self.store.timed_stage(name):
            yield

    def evaluate(self, name: str, attack: str, location: str, sets: list[EvalSet], gen: GenerationConfig,
                 judges: list[str], capability: list[str] | None = None, capability_limit: int | None = None,
                 stage: str | None = None, judge_options: dict | None = None, shots: int = 0, judge_client=None,
                 lmeval_include: str | None = None) -> None:
        """The eval stage (generate + judge; none without sets) and, if asked, the capability stage for one model."""
        loaded = None
        if sets:
            with self(stage or f"eval:{name}"):
                loaded = evaluate_model(self.store, name, attack, location, sets, gen, judges, judge_options)
        if capability:
            from .capability.run import evaluate_capability

            with self(f"capability:{name}"):
                evaluate_capability(self.store, name, attack, location, capability, capability_limit, shots,
                                    judge_client, lmeval_include, loaded=loaded)

    def stopped(self, exc: BaseException) -> FtauditError:
        self.store.close()
        return FtauditError(f"stopped in stage '{self.current}' ({exc}); rerun the same command to resume, finished work is kept")


def evaluate_system_twin(stages: StageRunner, initial_name: str, initial: str, attacked_dir: str | Path, recipe: str,
                         sets: list[EvalSet], gen: GenerationConfig, judges: list[str],
                         judge_options: dict | None = None) -> str | None:
    """Evaluate the initial model under the system prompt and template an attack recorded for its own evaluation
    (identity shift: Qi et al.'s "AOA" prompt), so the attack's change is measured against the same prompt, not
    against the initial model without it (which adds the prompt's own effect); returns its name, or None when the
    attack recorded no prompt. The twin shares the initial model's weights, so its capability is not re-scored."""
    meta = read_marker(Path(attacked_dir)) if Path(attacked_dir).is_dir() else None
    if not meta or not meta.get("eval_system_prompt"):
        return None
    name = f"{initial_name}({recipe} system prompt)"
    cfg = replace(gen, system_prompt=meta["eval_system_prompt"], prompt_template=meta.get("eval_prompt_template", "{prompt}"))
    stages.evaluate(name, "none", initial, sets, cfg, judges, judge_options=judge_options)
    return name


# Per packaged model, what differs from the defaults so the quickstart fits its CPU time target.
QUICKSTART_SIZES: dict[str, dict] = {
    # generation in bfloat16 where this machine runs it natively (cold-cache quickstart on 2 AVX512-BF16 cores: 27 min
    # 39 s with float32 generation, 17 min 58 s with bf16), float32 where it would be emulated (see models.dtype_choice)
    "qwen2.5-coder-0.5b-instruct": {"generation_dtype": "auto"},
}


@dataclass
class QuickstartConfig:
    """Defaults sized for a 2-core CPU; ``smoke()`` shrinks everything for tests."""

    model: str = "smollm2-135m-instruct"
    eval_sets: list[str] = field(default_factory=lambda: ["advbench@40", "harmbench@40", "benign@40", "mtbench@24"])
    judges: list[str] = field(default_factory=lambda: list(DEFAULT_EVAL_JUDGES))
    # Qi et al.'s harmfulness score and rate (1-5) on the harmful sets, from the LLM judge on offline weights that
    # agrees best with people (docs/judges.md); None skips it. Its model: ``harm_judge_model`` (None: the judge's own)
    harm_judge: str | None = DEFAULT_HARM_JUDGE
    harm_judge_model: str | None = DEFAULT_HARM_JUDGE_MODEL
    max_new_tokens: int = 32
    batch_size: int | None = None  # speed only: the batched path picks (40 on CPU, what fits on a GPU)
    align: dict = field(default_factory=dict)  # recipe params, e.g. n_harmful
    align_train: dict = field(default_factory=dict)
    attacks: list[tuple[str, dict, dict]] = field(default_factory=lambda: [
        ("harmful-shots", {"shots": 10}, {}),
        ("identity-shift", {}, {}),
        ("benign", {"dataset": "benign", "n": 50}, {}),
    ])
    evaluate_baseline: bool = True
    # The un-aligned packaged model refuses nothing (2.5% measured); its harmful-set rows show that, and
    # skipping its benign sets keeps the CPU quickstart under 15 minutes.
    baseline_eval_sets: list[str] = field(default_factory=lambda: ["advbench@40", "harmbench@40"])
    # MMLU sits at chance on a 135M model, so the CPU default is the benign-answer NLL (all 30 items);
    # add "mmlu" (with capability_limit) for models large enough to move it.
    capability: list[str] = field(default_factory=lambda: ["benign-nll"])
    capability_limit: int | None = None
    seed: int = 0
    seeds: list[int] | None = None  # several: every attack once per seed (names carry @seed=S); alignment uses ``seed``
    # auto: align only a model whose baseline refuses < align_decision.ALIGN_BELOW of the held-out harmful prompts
    align_mode: str = "auto"
    # writes the compliant answers of harmful-shots at run time; SmolLM2 refuses nothing (a refusing reference
    # would leave too few compliant answers)
    reference_model: str = "smollm2-135m-instruct"
    # local generation's compute dtype (part of its identity): None keeps the weights' own, "auto" picks bfloat16 only
    # where this machine runs it natively (models.dtype_choice)
    generation_dtype: str | None = None
    price_per_device_hour: float | None = None  # prices each attack in the report (device-hours x this)

    @classmethod
    def for_model(cls, model: str) -> "QuickstartConfig":
        """The defaults, with the sizes :data:`QUICKSTART_SIZES` gives a packaged model that needs others."""
        return replace(cls(model=model), **QUICKSTART_SIZES.get(model, {}))

    @classmethod
    def smoke(cls) -> "QuickstartConfig":
        return cls(eval_sets=["advbench@6", "harmbench@4", "benign@4"], max_new_tokens=8, batch_size=8,
                   align={"n_harmful": 8, "n_benign": 6, "answer_tokens": 12}, align_train={"epochs": 1, "max_length": 96},
                   attacks=[("harmful-shots", {"shots": 2, "answer_tokens": 12}, {"epochs": 1}),
                            ("identity-shift", {"n": 2}, {"epochs": 1})], evaluate_baseline=False,
                   capability=["benign-nll"], capability_limit=3, align_mode="always",
                   harm_judge=None)  # a plumbing check: the harm judge model takes minutes to load


def attack_budget(train_dir: Path, result) -> dict:
    """What an attack cost the attacker: its own examples x epochs (before a defense screened or added records),
    optimizer steps, training seconds and devices."""
    meta = json.loads((Path(train_dir) / "ftaudit_model.json").read_text())
    if meta.get("attack_kind") == "weight-edit":  # no training: the prompts it ran once each, no optimizer step
        return {"examples_x_epochs": meta["attack_examples"], "steps": 0, "train_seconds": result.train_seconds,
                "devices": 1, "trained_examples": 0, "epochs": None, "attack_kind": "weight-edit"}
    trained = sum(1 for _ in open(Path(train_dir) / "train_data.jsonl"))
    n_examples = meta.get("attack_examples", trained)
    return {"examples_x_epochs": n_examples * meta["train_config"]["epochs"], "steps": result.steps,
            "train_seconds": result.train_seconds, "devices": result.devices, "trained_examples": trained,
            "epochs": meta["train_config"]["epochs"]}


def quickstart(out: str | Path, cfg: QuickstartConfig | None = None, show_responses: bool = False) -> dict:
    """The whole audit on one model: safety-train it if it needs it (``cfg.align_mode``), attack it three ways,
    evaluate all, report."""
    cfg = cfg or QuickstartConfig()
    out = Path(out)
    store = Store(out)
    (out / "config.json").write_text(json.dumps(cfg.__dict__, indent=2, default=str))
    gen = GenerationConfig(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, dtype=cfg.generation_dtype)
    sets = [parse_eval_set(s) for s in cfg.eval_sets]
    models = out / "models"
    judges = [*cfg.judges, *([cfg.harm_judge] if cfg.harm_judge and cfg.harm_judge not in cfg.judges else [])]
    judge_options = {"model": cfg.harm_judge_model} if cfg.harm_judge and cfg.harm_judge_model else None
    if judge_options:  # judge options reach every judge: another judge that runs on a model would take this one
        from .judges import JUDGES

        others = [j for j in cfg.judges if j != cfg.harm_judge and JUDGES[j].needs != "offline"]
        if others:
            raise FtauditError(f"harm_judge_model {cfg.harm_judge_model} would also be the model of {', '.join(others)}; "
                               "run those judges in another evaluation")
    t0 = time.time()
    stages = StageRunner(store)
    try:
        with stages("prepare"):
            from .models import load_model

            load_model(cfg.model)  # fetch, verify and convert once
        if cfg.evaluate_baseline or cfg.align_mode == "auto":
            # the aligned model's capability is the reference for changes, so the baseline's is skipped (saves time)
            stages.evaluate("baseline", "none", cfg.model, [parse_eval_set(s) for s in cfg.baseline_eval_sets], gen, judges,
                            judge_options=judge_options)
        decision = decide_alignment(store, cfg.align_mode, cfg.judges)
        say(f"alignment: {decision.reason}", "bold")
        if decision.align:
            with stages("align"):
                target = aligned_model(store, cfg.model, models / "aligned", params=cfg.align, overrides=cfg.align_train,
                                       seed=cfg.seed)
            target_name = "aligned"
        else:  # the vendor's own safety training is what the attacks must undo
            target, target_name = cfg.model, "baseline"
        stages.evaluate(target_name, "none", target, sets, gen, judges, cfg.capability, cfg.capability_limit,
                        stage=None if decision.align else "eval:baseline (remaining sets)", judge_options=judge_options)
        seeds = cfg.seeds if cfg.seeds and len(cfg.seeds) > 1 else [None]
        budgets: dict[str, dict] = {}
        for recipe, params, overrides in cfg.attacks:
            for seed in seeds:
                where = models / (recipe if seed is None else f"{recipe}-seed{seed}")
                with stages(seed_name(f"attack:{recipe}", seed)):
                    name, result = run_recipe(store, recipe, target, where, model_name=target_name,
                                              reference_model=cfg.reference_model, params=params, overrides=overrides,
                                              seed=cfg.seed if seed is None else seed, name_seed=seed)
                budgets[name] = {"recipe": recipe, "initial_model": target_name, "attack": name.split("+", 1)[1],
                                 "seed": seed, "defense": "none", **attack_budget(where, result)}
                stages.evaluate(name, name.split("+", 1)[1], str(where), sets, gen, judges, cfg.capability,
                                cfg.capability_limit, judge_options=judge_options)
                twin = evaluate_system_twin(stages, target_name, target, where, recipe, sets, gen, judges, judge_options)
                if twin:
                    budgets[name]["same_prompt_reference"] = twin
        with stages("report"):
            from .judges.validate import ensure_validated
            from .report.experiment import report_experiment, write_experiment

            ensure_validated(cfg.judges)  # so the report can say how far to trust each offline refusal judge
            # what `ftaudit report` needs to render it again: one budget per attack (each tamper row is a single
            # point, "<= its budget" where refusal halves), the price and the alignment decision
            write_experiment(out, budgets, cfg.price_per_device_hour, cfg.seeds, alignment=decision.as_dict())
            summary = report_experiment(out, show_responses)
    except (FtauditError, KeyboardInterrupt) as exc:
        raise stages.stopped(exc) from None
    summary["stages"] = store.stages()  # now with the report stage's own time
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    store.close()
    say(f"quickstart finished in {time.time() - t0:.0f} s; see {out / 'report.html'}", "bold")
    return summary
