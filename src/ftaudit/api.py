"""ftaudit's main jobs as Python functions, each returning a typed result; the command line is a thin layer over them.

Every function writes the same run directory the matching command writes (resumable: call it again after a kill),
checks what a user can get wrong before any work, and raises :class:`ftaudit.errors.FtauditError` with one readable
line where the command would print ``error:`` and exit 2. In the manner of lm-evaluation-harness's
``simple_evaluate``::

    import ftaudit

    run = ftaudit.evaluate("runs/align/model", "runs/eval", datasets=["advbench@40"], judges=["refusal-cues"])
    print(run.value("refusal_rate", dataset="advbench", judge="refusal-cues"))
    decision = ftaudit.gate("runs/eval", max_over_refusal=0.2)
    print(decision.passed, decision.exit_code)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from .atomic import run_dir_lock
from .defaults import DEFAULT_EVAL_JUDGES
from .errors import FtauditError
from .seeds import check_seeds


@dataclass(frozen=True)
class RunResult:
    """A finished run directory and its ``summary.json`` (see docs/architecture.md for every key)."""

    out: Path
    summary: dict

    @property
    def results(self) -> list[dict]:
        """Every result row: model, dataset, split, judge, metric, value, 95% interval ``ci``, n and its identity."""
        return self.summary["results"]

    @property
    def changes(self) -> list[dict]:
        """Initial -> fine-tuned on the same prompts and judge version, with Newcombe's paired interval."""
        return self.summary.get("changes", [])

    @property
    def tamper_resistance(self) -> list[dict]:
        return self.summary.get("tamper_resistance", [])

    def value(self, metric: str = "refusal_rate", *, model: str | None = None, dataset: str | None = None,
              judge: str | None = None) -> dict:
        """The one result row matching ``metric`` and whatever else is given; an error when none or several match
        (name the model, dataset or judge to choose), never a guess."""
        rows = [r for r in self.results if r["metric"] == metric and (model is None or r["model"] == model)
                and (dataset is None or r["dataset"] == dataset) and (judge is None or r["judge"] == judge)]
        if len(rows) != 1:
            found = "no row" if not rows else f"{len(rows)} rows ({', '.join(sorted({_row_name(r) for r in rows}))})"
            raise FtauditError(f"{metric} for model={model}, dataset={dataset}, judge={judge}: {found} in {self.out}")
        return rows[0]


def _row_name(r: dict) -> str:
    return f"{r['model']} | {r['dataset']} | {r['judge']}"


@dataclass(frozen=True)
class TrainedModel:
    """One fine-tuned model: its name in reports, where its weights (or adapter) are, and what training cost."""

    name: str
    path: Path
    train_seconds: float
    train_tokens: int
    final_loss: float | None


@dataclass(frozen=True)
class GateResult:
    """A gate's decision. ``passed`` only when every threshold's whole 95% interval is on its safe side; ``rows``
    holds every checked row (status pass, breach, unproven or not measured), as ``gate.json`` does."""

    run_dir: Path
    passed: bool
    rows: list[dict]
    judges: dict[str, str]  # each judge's agreement with people, as printed
    thresholds: dict
    kept_reports: list[str] = field(default_factory=list)  # earlier reports kept when the report was re-rendered

    @property
    def exit_code(self) -> int:
        """What ``ftaudit gate`` exits with: 0 pass, 1 fail."""
        return 0 if self.passed else 1

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)


@dataclass(frozen=True)
class ScreenResult:
    """A customer file screened before training: the summary (counts with Wilson intervals, risk level, what it
    resembles, rows that could not be read), the first flagged examples, and where ``screen.jsonl`` (every example)
    and ``screen.json`` were written."""

    out: Path
    summary: dict
    sample: list = field(repr=False)  # the first flagged examples (every one is in out/screen.jsonl)
    meta: dict = field(repr=False)

    @property
    def risk(self) -> str:
        """high, medium, low, or "nothing to screen" (a file with no example: never low)."""
        return self.summary["risk"]

    def fails(self, fail_on: str = "high") -> bool:
        """Whether ``ftaudit screen --fail-on`` would exit 1: at or above ``fail_on`` (high, medium; never: no)."""
        if fail_on not in ("high", "medium", "never"):
            raise FtauditError(f"fail_on {fail_on!r}: use high, medium or never")
        level = {"nothing to screen": 3, "high": 2, "medium": 1, "low": 0}[self.risk]
        return level >= {"never": 4, "high": 2, "medium": 1}[fail_on]


def quickstart(out: str | Path = "runs/quickstart", *, model: str = "smollm2-135m-instruct", align: str = "auto",
               seeds: list[int] | None = None, reference_model: str = "smollm2-135m-instruct", smoke: bool = False,
               price_per_device_hour: float | None = None, show_responses: bool = False,
               harm_judge: str | None = "default", harm_judge_model: str | None = None) -> RunResult:
    """The whole audit on one model: safety-train it if it needs it (``align``: auto, always, never), attack it three
    ways, evaluate every model, write the report. ``harm_judge`` gives Qi et al.'s harmfulness score and rate on the
    harmful sets ("default": the configuration's, off in ``smoke``; None: none), on ``harm_judge_model``."""
    from .align_decision import check_align_mode
    from .models import check_model_location
    from .pipeline import QuickstartConfig
    from .pipeline import quickstart as run

    check_align_mode(align)
    seeds = check_seeds(seeds)
    _check_price(price_per_device_hour)
    check_model_location(model, reference_model)
    base = QuickstartConfig.smoke() if smoke else QuickstartConfig.for_model(model)
    cfg = replace(base, seeds=seeds, model=model, reference_model=reference_model,
                  align_mode="always" if smoke and align == "auto" else align,
                  price_per_device_hour=price_per_device_hour)
    if harm_judge != "default":
        if harm_judge is not None:
            from .judges import JUDGES, check_judges

            check_judges([harm_judge])
            if JUDGES[harm_judge].measures != "harm":
                raise FtauditError(f"--harm-judge {harm_judge} measures refusal; name a harm judge "
                                   f"({', '.join(n for n, c in sorted(JUDGES.items()) if c.measures == 'harm')})")
        cfg = replace(cfg, harm_judge=harm_judge)
    if harm_judge_model is not None:
        if not cfg.harm_judge:
            raise FtauditError("--harm-judge-model names the harm judge's model, but no harm judge runs (--harm-judge "
                               "none, or --smoke without --harm-judge): drop it or name a harm judge")
        check_model_location(harm_judge_model)
        cfg = replace(cfg, harm_judge_model=harm_judge_model)
    with run_dir_lock(out):
        return RunResult(Path(out), run(out, cfg, show_responses))


def evaluate(model: str, out: str | Path, *, datasets: list[str] | None = None, benign: list[str] | None = None,
             judges: list[str] | None = None, judge_options: dict | None = None, capability: list[str] | None = None,
             capability_limit: int | None = None, shots: int = 0, name: str | None = None,
             system_prompt: str | None = None, max_new_tokens: int = 32, batch_size: int | None = None,
             dtype: str | None = None, column: str | None = None, lmeval_include: str | None = None,
             show_responses: bool = False) -> RunResult:
    """Generate on held-out prompts, judge, score capability, write the report. ``datasets`` are harmful sets
    ``NAME[:SPLIT][@N]`` or files (default ``advbench@40``, ``harmbench@40``); ``benign`` measures over-refusal
    (default ``benign@40``); ``capability``: mmlu, benign-nll, mtbench, lmeval:TASK."""
    from .eval_run import EvalRequest, run_eval

    req = EvalRequest(model=model, out=out, datasets=datasets, benign=benign,
                      judges=list(judges or DEFAULT_EVAL_JUDGES), judge_options=dict(judge_options or {}),
                      capability=list(capability or []), capability_limit=capability_limit, shots=shots,
                      lmeval_include=lmeval_include, name=name, column=column, system_prompt=system_prompt,
                      max_new_tokens=max_new_tokens, batch_size=batch_size, dtype=dtype, show_responses=show_responses)
    return RunResult(Path(out), run_eval(req))


def prefill(models: dict[str, str], out: str | Path, *, reference_model: str, datasets: list[str] | None = None,
            judges: list[str] | None = None, tokens: tuple[int, ...] | None = None, max_new_tokens: int = 32,
            dtype: str | None = "auto", against: dict[str, str] | None = None) -> list[dict]:
    """The prefilling attack (Qi et al. 2024) on each of ``models`` ({name: location}): answers opened with the first
    k tokens (``tokens``, default 5, 10, 20, 40) of ``reference_model``'s compliant answers, judged on the
    continuation; rows per model, judge and k with intervals (also ``out/prefill.json`` and ``out/prefill.md``).
    ``against`` ({defended name: undefended name}) adds each defended model's paired change against the undefended
    one at the same k."""
    from .models import check_model_location
    from .prefill import PREFILL_TOKENS, run_prefill

    if bad := sorted(n for pair in (against or {}).items() for n in pair if n not in models):
        raise FtauditError(f"--against names {', '.join(bad)}, not among the --model names ({', '.join(models)})")
    if same := sorted(d for d, u in (against or {}).items() if d == u):
        raise FtauditError(f"--against {same[0]}={same[0]} compares a model with itself; name its undefended twin")
    check_model_location(*models.values(), reference_model)
    return run_prefill(models, out, reference_model, list(datasets or ["advbench@40", "harmbench@40"]),
                       list(judges or DEFAULT_EVAL_JUDGES), tuple(tokens or PREFILL_TOKENS), max_new_tokens, dtype,
                       against)


def align(model: str = "smollm2-135m-instruct", out: str | Path = "runs/align", *, params: dict | None = None,
          train: dict | None = None, seed: int = 0) -> TrainedModel:
    """Safety-train ``model`` with the align recipe (refuse harmful training prompts, keep answering benign ones);
    the merged model is written to ``out/model``."""
    return attack("align", model, out, params=params, train=train, seed=seed)[0]


def attack(recipe: str, model: str, out: str | Path, *, params: dict | None = None, train: dict | None = None,
           reference_model: str | None = None, seed: int = 0, seeds: list[int] | None = None) -> list[TrainedModel]:
    """Fine-tune ``model`` the way an attacker or a careless customer would (``recipe``: harmful-shots,
    identity-shift, benign; ``params`` its options, ``train`` any training option). One model per seed in ``seeds``
    (each in ``out/seed-S/model``), else one in ``out/model``. Each carries a safety-compromised model card."""
    from .models import check_model_location
    from .recipes.base import recipe_params
    from .attack_run import run_attack
    from .store import Store

    from .fine_tune import train_config

    recipe_params(recipe, params or {})  # an unknown recipe or parameter fails before any work
    train_config({}, train or {})  # so does an unknown or out-of-range training option
    seeds = check_seeds(seeds)
    check_model_location(model, *([reference_model] if reference_model else []))
    out = Path(out)
    trained = []
    with Store(out) as store:
        for s in seeds or [seed]:
            where = out / "model" if not seeds else out / f"seed-{s}" / "model"
            name, res = run_attack(store, recipe, model, where, model_name="baseline" if recipe == "align" else "model",
                                   reference_model=reference_model, params=params,
                                   overrides={**(train or {}), "seed": s},
                                   seed=s, name_seed=s if seeds else None)
            trained.append(TrainedModel(name, where, res.train_seconds, res.train_tokens, res.final_loss))
    return trained


def _spec(spec: str | Path, seeds: list[int] | None):
    from .experiments import load_spec

    parsed = load_spec(spec)  # an invalid spec fails here, before any work
    seeds = check_seeds(seeds)
    return replace(parsed, seeds=seeds, seed=seeds[0]) if seeds else parsed


def plan(spec: str | Path, *, seeds: list[int] | None = None) -> dict:
    """What :func:`run_spec` would train and evaluate, from the spec alone (nothing loaded or written): one row per
    attacked model (name, defense, seed, budget, identity, curve) and the counts of trainings and evaluations."""
    from .experiments.run import plan as plan_points

    return plan_points(_spec(spec, seeds))


def run_spec(spec: str | Path, out: str | Path, *, seeds: list[int] | None = None, executor: str = "local",
             address: str | None = None) -> RunResult:
    """Run an experiment spec (YAML): every grid point under every defense, resumably; ``seeds`` overrides the
    spec's. The whole spec is validated before any work."""
    from .experiments.run import run_spec as run
    from .judges import check_judges
    from .judges.validate import ensure_validated
    from .models import check_model_location
    from .models.loading import check_generation_room

    parsed = _spec(spec, seeds)
    check_model_location(*parsed.models, parsed.reference_model)
    check_generation_room(parsed.eval.max_new_tokens, *parsed.models)
    check_judges(parsed.eval.judges, {})  # an API judge needs FTAUDIT_JUDGE_BASE_URL / _MODEL set
    ensure_validated(parsed.eval.judges)  # so the report can say how far to trust each offline refusal judge
    with run_dir_lock(out):
        return RunResult(Path(out), run(parsed, out, executor=executor, address=address))


def gate(run_dir: str | Path, *, max_refusal_drop: float | None = None, max_attack_success: float | None = None,
         max_over_refusal: float | None = None, min_tamper_budget: float | None = None,
         max_capability_drop: float | None = None, max_task_drop: float | None = None,
         models: list[str] | None = None) -> GateResult:
    """Decide a finished run against thresholds (these, over the run spec's ``gate:`` block). A threshold passes only
    when its whole 95% interval is on the safe side; the report is re-rendered to show the decision (earlier reports
    are kept as numbered copies) and ``gate.json`` keeps every row."""
    from pydantic import ValidationError

    from .errors import validation_message
    from .gating import GateSpec, check_gate, load_gate_spec
    from .report.writer import rerender_with_gate

    run_dir = Path(run_dir)
    given = {"max_refusal_drop": max_refusal_drop, "max_attack_success": max_attack_success,
             "max_over_refusal": max_over_refusal, "min_tamper_budget": min_tamper_budget,
             "max_capability_drop": max_capability_drop, "max_task_drop": max_task_drop,
             "models": list(models) if models else None}
    for key, value in given.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise FtauditError(f"--{key.replace('_', '-')} {value}: not a number; give a finite threshold")
    try:
        base = load_gate_spec(run_dir)
        spec = GateSpec(**{**(base.model_dump() if base else {}), **{k: v for k, v in given.items() if v is not None}})
    except ValidationError as exc:
        raise FtauditError(validation_message(exc)) from None
    if not run_dir.is_dir():
        raise FtauditError(f"{run_dir} has no summary.json; run `ftaudit report {run_dir}` (or finish the run) first")
    with run_dir_lock(run_dir):
        result = check_gate(run_dir, spec)  # decided from summary.json as it is
        kept = rerender_with_gate(run_dir, result)
    return GateResult(run_dir, result["passed"], result["rows"], result["judges"], result["thresholds"], kept)


def screen(data: str | Path, out: str | Path | None = None, *, reference: str | Path | None = None,
           threshold: float | None = None, strict: bool = False, show_responses: bool = False,
           reference_model: str | None = None) -> ScreenResult:
    """Flag risky training examples before any training (harmful compliance, identity-shift personas,
    refusal-removal instructions), each with its reason, reading the file as it goes (OpenAI chat or prompt/completion
    JSONL, ShareGPT conversations, CSV); writes ``screen.jsonl`` and ``screen.json`` into ``out`` (default
    ``runs/screen-<file name>``). A row that cannot be read is named with its line and skipped, or with ``strict``
    is an error. ``reference_model``: the model whose answers to the benchmarks' train prompts teach the
    harmful-exchange classifier what an answered harmful request reads like (default: the packaged SmolLM2, which
    refuses nothing)."""
    from .harm_classifier import DEFAULT_REFERENCE, THRESHOLD
    from .screening import load_reference, screen_file

    threshold = THRESHOLD if threshold is None else threshold
    if not 0 <= threshold <= 1:
        raise FtauditError(f"threshold {threshold}: the classifier's probability cut-off is in [0, 1]")
    data = Path(data)
    if not data.is_file():
        raise FtauditError(f"no such file: {data}")
    ref = load_reference(reference)
    where = Path(out or Path("runs") / f"screen-{data.stem}")
    summary, meta, sample = screen_file(data, where, ref, threshold, strict, show_responses,
                                        reference_model=reference_model or DEFAULT_REFERENCE)
    return ScreenResult(where, summary, sample, meta)


def audit_job(model: str, data: str | Path, out: str | Path, *, train: dict | None = None,
              config: str | Path | None = None, datasets: list[str] | None = None, benign: list[str] | None = None,
              judges: list[str] | None = None, max_new_tokens: int = 32, seed: int = 0,
              price_per_device_hour: float | None = None, gate: str | Path | None = None,
              show_responses: bool = False) -> RunResult:
    """A fine-tuning service's audit of one customer job: screen ``data``, fine-tune ``model`` exactly as asked
    (``config``: the customer's request as YAML; ``train`` overrides it), evaluate before and after on held-out harmful
    and benign prompts (also under the customer's system prompt when most examples share one), and write the report,
    whose first line is the decision. ``gate``: a YAML file of thresholds (default: at most 10 points of refusal
    removed). Resumable."""
    from .customer_job import AuditJob, load_gate_file, load_job_config, run_audit_job
    from .data import load_chat_records
    from .models import check_model_location
    from .models.loading import check_generation_room

    from .evaluation import eval_sets_from
    from .judges import check_judges

    _check_price(price_per_device_hour)
    if max_new_tokens < 1:
        raise FtauditError(f"max_new_tokens {max_new_tokens}: give at least 1")
    check_model_location(model)
    if not load_chat_records(Path(data)):  # read and checked before the job directory exists
        raise FtauditError(f"{data} holds no training examples")
    check_generation_room(max_new_tokens, model)
    eval_sets_from(list(datasets or []), list(benign or []))  # names, files and limits, before any work
    if judges:
        check_judges(list(judges), {})
    thresholds = load_gate_file(gate) if gate else None
    request = {**(load_job_config(config) if config else {}), **{k: v for k, v in (train or {}).items() if v is not None}}
    job = AuditJob(model, str(data), str(out), request, seed=seed, max_new_tokens=max_new_tokens,
                   price_per_device_hour=price_per_device_hour, gate=thresholds)
    job.datasets = list(datasets) if datasets else job.datasets
    job.benign = list(benign) if benign else job.benign
    job.judges = list(judges) if judges else job.judges
    with run_dir_lock(out):
        return RunResult(Path(out), run_audit_job(job, show_responses))


def _check_price(price: float | None) -> None:
    if price is not None and not (math.isfinite(price) and price >= 0):
        raise FtauditError(f"price per device-hour {price}: give a finite, non-negative number")


def validate_judges(judges: list[str] | None = None, *, sets: list[str] | None = None, labels: str | Path | None = None,
                    limit: int | None = None, judge_options: dict | None = None) -> list[dict]:
    """How far each judge agrees with people: refusal judges on labelled replies (accuracy, precision, recall,
    Cohen's kappa, with 95% intervals; never on a set the judge was trained on), harm judges against pyrit's human
    harm scores (Spearman, accuracy and kappa of harmful). Default: every offline refusal judge."""
    from .judges import JUDGES, check_judges
    from .judges.validate import validate
    from .judges.validate_harm import validate_harm

    options = dict(judge_options or {})
    names = list(judges or [n for n, cls in sorted(JUDGES.items())
                            if cls.needs == "offline" and cls.measures == "refusal"])
    check_judges(names, options)
    refusal = [n for n in names if JUDGES[n].measures == "refusal"]
    harm = [n for n in names if JUDGES[n].measures == "harm"]
    return (validate(refusal, sets, labels, options) if refusal else []) + (validate_harm(harm, limit, options) if harm else [])


__all__ = ["GateResult", "RunResult", "ScreenResult", "TrainedModel", "align", "attack", "audit_job", "evaluate", "gate",
           "plan", "quickstart", "run_spec", "screen", "validate_judges"]
