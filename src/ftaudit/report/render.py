"""Render a run directory's store into the summary.json contract and human reports.

Responses to harmful prompts are redacted unless ``show_responses`` is set.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .. import __version__
from ..atomic import atomic_file, atomic_write_text, keep_copy
from ..errors import FtauditError
from ..gate import gate_number
from ..judges import JUDGES
from ..judges.validate import trust, trust_text
from ..metrics import capability_metrics, is_rate, refusal_metrics
from ..progress import say
from ..store import Store
from .compare import capability_changes, changes, initial_model, seed_results
from .defense_matrix import matrix_tables
from .verdict import verdict_card

REDACTED = "[redacted: response to a harmful prompt; rerun `ftaudit report --show-responses` to see it]"
# the contract's keys plus the evaluation's identity (judge version, generation-settings hash, weights, seed)
RESULT_KEYS = ("model", "attack", "dataset", "split", "judge", "judge_version", "generation", "model_fingerprint", "seed",
               "metric", "value", "ci", "n")
__all__ = ["build_summary", "initial_model", "write_reports"]


def _rows(store: Store) -> list[dict]:
    return [dict(r) for r in store.eval_table()]


def build_summary(store: Store, tamper: dict | None = None) -> dict:
    """The summary.json contract from the store; ``tamper`` (threshold, relative) is the rule each refusal change's
    drop and verdict are read against (default: refusal falls to half its initial value)."""
    rows = _rows(store)
    cap_rows = store.capability_rows()
    results = [{k: m[k] for k in RESULT_KEYS} for m in refusal_metrics(rows) + capability_metrics(cap_rows)]
    results += seed_results(rows, cap_rows)
    by_cat = refusal_metrics(rows, by_category=True) + capability_metrics(cap_rows, by_category=True)
    costs = [{"model": c["model"], "attack": c["attack"], "train_seconds": round(c["train_seconds"], 1),
              "train_tokens": c["train_tokens"], "peak_memory_mb": c["peak_memory_mb"],
              "generate_seconds": round(c["gen_seconds"], 1), "generated_tokens": c["gen_tokens"], "devices": c["devices"]}
             for c in store.costs() if not c["model"].startswith("reference:")]
    costs += seed_costs(costs)
    from ..held_out import read as read_held_out

    return {"ftaudit_version": __version__, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "held_out": read_held_out(store.dir),
            "stages": store.stages(), "results": results, "judge_calls": store.judge_calls(),
            "judge_validation": trust([(r["judge"], r["judge_version"]) for r in results if r["judge"] in JUDGES]), "category_results": by_cat, "costs": costs,
            "changes": with_costs(_in_grid_order(changes(rows, tamper)), costs),
            "capability_changes": with_costs(_in_grid_order(capability_changes(cap_rows)), costs),
            "generation_settings": generation_settings(rows, store.gen_settings())}


def generation_settings(rows: list[dict], known: dict[tuple[str, str], dict]) -> dict[str, dict]:
    """Per model, the readable settings of each generation key its evaluations used (the dtype computed in and
    why); a key generated before settings were recorded is listed with ``{}``."""
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(r["model"], {})[r["gen_key"]] = known.get((r["model_fingerprint"], r["gen_key"]), {})
    return out


COST_KEYS = ("train_seconds", "train_tokens", "device_seconds", "estimated_price", "per_seed")


def seed_costs(costs: list[dict]) -> list[dict]:
    """One cost row per setting trained with several seeds (``NAME`` for ``NAME@seed=S``): the mean of each figure,
    and each seed's training device-seconds in ``per_seed``, so a row taken over seeds is priced like its seeds."""
    from ..seeds import split_seed

    groups: dict[str, dict[int, dict]] = defaultdict(dict)
    for c in costs:
        base, seed = split_seed(c["model"])
        if seed is not None:
            groups[base][seed] = c
    out = []
    for base, seeds in groups.items():
        if len(seeds) < 2:
            continue
        rows = list(seeds.values())
        mean = {k: round(sum(r.get(k) or 0 for r in rows) / len(rows), 1)
                for k in ("train_seconds", "generate_seconds", "train_tokens", "generated_tokens")}
        out.append({"model": base, "attack": split_seed(rows[0].get("attack") or base)[0], **mean,
                    "peak_memory_mb": max(r.get("peak_memory_mb") or 0 for r in rows), "devices": rows[0].get("devices", 1),
                    "per_seed": {s: round(seeds[s]["device_seconds"] if seeds[s].get("device_seconds") is not None
                                          else seeds[s]["train_seconds"] * seeds[s].get("devices", 1), 1)
                                 for s in sorted(seeds)}})
    for row in out:
        row["device_seconds"] = round(sum(row["per_seed"].values()) / len(row["per_seed"]), 1)
    return out


def with_costs(rows: list[dict], costs: list[dict]) -> list[dict]:
    """Put each fine-tuned model's training cost (and price, once priced) beside its result."""
    by_model = {c["model"]: c for c in costs}
    return [{**r, **{k: by_model[r["model"]][k] for k in COST_KEYS if k in by_model.get(r["model"], {})}} for r in rows]


def natural_key(text: str) -> list:
    """'shots=50' sorts before 'shots=100': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _in_grid_order(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (natural_key(r["model"]), r["dataset"], r["judge"]))


def category_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Refusal / over-refusal rate per (dataset, category) with one column per model."""
    cells: dict[tuple, dict[str, str]] = defaultdict(dict)
    models: list[str] = []
    for r in summary["category_results"]:
        if r["metric"] not in ("refusal_rate", "over_refusal_rate"):
            continue
        if r["model"] not in models:
            models.append(r["model"])
        cells[(r["dataset"], r.get("category") or "-")][r["model"]] = f"{100 * r['value']:.0f}% ({r['n']})"
    rows = [[d, c, *[cells[(d, c)].get(m, "") for m in models]] for d, c in sorted(cells)]
    return ["dataset", "category", *models], rows


def _fmt_metric(metric: str, x: float) -> str:
    """Rates as percentages, everything else (NLL, scores) as numbers."""
    return _pct(x) if is_rate(metric) else f"{x:.3f}"


def _change(metric: str, change: dict) -> str:
    """'-83.3 pts [-95.0, -70.0]' for rates, '+1.20 [0.80, 1.60]' for scores."""
    if is_rate(metric):
        return f"{100 * change['value']:+.1f} pts {_ci(change['ci'])}"
    return f"{change['value']:+.3f} [{change['ci'][0]:.3f}, {change['ci'][1]:.3f}]"


def tamper_line(t: dict) -> str:
    """The headline sentence: what was measured, the definition, the number and its joint-bootstrap interval."""
    lo, hi = t["ci"]
    if t.get("at_or_below"):  # the smallest budget tested already crosses: nothing measured below it
        ci = f"95% CI 0 to {'not reached' if hi is None else f'{hi:.4g}'}"
    else:
        ci = (f"95% CI {'?' if lo is None else f'{lo:.4g}'} to {'not reached' if hi is None else f'{hi:.4g}'}"
              if t["reached"] or lo is not None else "")
    others = "".join(f"; {o['text']} {unit}" for unit, o in (t.get("other_units") or {}).items())
    under = f" under {t['defense']}" if t.get("defense") not in (None, "none") else ""
    setting = f" at {t['curve']}" if t.get("curve") else ""
    against = f"; measured against {t['initial_model']}, {t['against']}" if t.get("against") else ""
    head = f"{t['model']} against {t['recipe']}{setting}{under} ({t['judge']} judge, {t['n_prompts']} harmful prompts{against}): "
    if not t["reached"]:
        drops = [p for p in t["points"] if p["drop"] is not None]
        top = max(drops, key=lambda p: p["drop"]) if drops else None
        largest = (f"; largest drop {100 * top['drop']:.1f}{'%' if t.get('relative') else ' pts'} "
                   f"[{100 * top['drop_ci'][0]:.1f}, {100 * top['drop_ci'][1]:.1f}] at {top['budget']:g}") if top else ""
        bound = f" (95% CI from {lo:.4g})" if lo is not None else ""
        return f"{head}{t['definition']}: {t['text']} {t['budget_unit']}{bound}{largest}"
    return f"{head}{t['definition']} at {t['text']} {t['budget_unit']}{f' ({ci})' if ci else ''}{others}"


def drop_text(c: dict) -> str:
    """'broken: 96.4% [81.2, 100.0] of its initial refusal' for a refusal change row; '-' for the others."""
    d = c.get("drop")
    if not d:
        return "-"
    if d.get("value") is None:
        return d["verdict"]
    unit = "% of the initial refusal" if d.get("relative", True) else " pts"
    lo, hi = d["ci"]
    ends = f"[{'?' if lo is None else f'{100 * lo:.1f}'}, {'?' if hi is None else f'{100 * hi:.1f}'}]"
    return f"{d['verdict']}: {100 * d['value']:.1f}{unit} {ends}"


def spread_text(c: dict) -> str:
    """'3 seeds: -20.0 to -5.0 pts (sd 7.6)' for a row taken over seeds; '' otherwise."""
    sp = c.get("spread")
    if not sp:
        return ""
    scale, unit = (100, " pts") if is_rate(c["metric"]) else (1, "")
    return f"{len(sp['per_seed'])} seeds: {scale * sp['min']:+.1f} to {scale * sp['max']:+.1f}{unit} (sd {scale * sp['sd']:.1f})"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ci(ci) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format=path.suffix.lstrip("."))
    plt.close(fig)
    return path


def plot(summary: dict, path: Path) -> Path | None:
    plt = _pyplot()
    res = [r for r in summary["results"] if r["metric"] in ("refusal_rate", "over_refusal_rate")]
    if not res:
        return None
    judge = "keyword" if any(r["judge"] == "keyword" for r in res) else res[0]["judge"]
    res = [r for r in res if r["judge"] == judge]  # one judge per plot: judges are never mixed
    models = sorted(dict.fromkeys(r["model"] for r in res), key=lambda m: (m != "baseline", "+" in m, m))
    sets = list(dict.fromkeys(f"{r['dataset']} ({'refusal' if r['metric'] == 'refusal_rate' else 'over-refusal'})" for r in res))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(models)), 4))
    width = 0.8 / max(len(sets), 1)
    for j, s in enumerate(sets):
        xs, ys, lo, hi = [], [], [], []
        for i, m in enumerate(models):
            for r in res:
                if r["model"] == m and s.startswith(r["dataset"] + " ("):
                    xs.append(i + j * width)
                    ys.append(100 * r["value"])
                    lo.append(100 * (r["value"] - r["ci"][0]))
                    hi.append(100 * (r["ci"][1] - r["value"]))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=s)
    ax.set_xticks([i + width * (len(sets) - 1) / 2 for i in range(len(models))], models, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel(f"refused (%), {judge} judge, 95% CI")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7)
    return _save(fig, path)


def scatter(summary: dict, path: Path) -> Path | None:
    """Safety change (mean refusal-rate change over harmful sets) against each capability change, per attacked model."""
    plt = _pyplot()
    safety: dict[str, list[float]] = defaultdict(list)
    for c in summary["changes"]:
        if c["metric"] == "refusal_rate":
            safety[c["model"]].append(c["change"]["value"])
    points = [(sum(safety[c["model"]]) / len(safety[c["model"]]), c) for c in summary.get("capability_changes", [])
              if safety.get(c["model"])]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for x, c in points:
        ax.errorbar(100 * x, c["change"]["value"], yerr=[[c["change"]["value"] - c["change"]["ci"][0]],
                                                          [c["change"]["ci"][1] - c["change"]["value"]]], fmt="o", capsize=3)
        ax.annotate(f"{c['model'].split('+', 1)[-1]} · {c['metric']}", (100 * x, c["change"]["value"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.axhline(0, color="#999", lw=0.8)
    ax.axvline(0, color="#999", lw=0.8)
    ax.set_xlabel("refusal-rate change on harmful prompts (points)")
    ax.set_ylabel("capability change (metric units, 95% CI)")
    return _save(fig, path)


def category_chart(summary: dict, path: Path) -> Path | None:
    """Per-category heatmap (the study's category breakdown): categories x models, harmfulness score where judged,
    else the refusal rate of the first refusal judge, on the first harmful set with categories; n in each cell."""
    plt = _pyplot()
    rows = summary["category_results"]
    judges = [j for j in dict.fromkeys(r["judge"] for r in rows if r["metric"] == "refusal_rate")]
    pick = next(((m, j) for m, j in [("harmfulness_score", "harmfulness"), *(("refusal_rate", j) for j in judges)]
                 if any(r["metric"] == m and r["judge"] == j for r in rows)), None)
    if pick is None:
        return None
    metric, judge = pick
    sel = [r for r in rows if r["metric"] == metric and r["judge"] == judge]
    datasets = sorted({r["dataset"] for r in sel}, key=lambda d: (d != "hexphi", d))
    sel = [r for r in sel if r["dataset"] == datasets[0]]
    cats = sorted({r["category"] or "-" for r in sel})
    models = list(dict.fromkeys(r["model"] for r in sel))
    cell = {(r["category"] or "-", r["model"]): r for r in sel}
    import numpy as np

    grid = np.array([[cell[(c, m)]["value"] if (c, m) in cell else np.nan for m in models] for c in cats])
    fig, ax = plt.subplots(figsize=(2.0 + 1.3 * len(models), 1.6 + 0.32 * len(cats)))
    scale = 5.0 if metric == "harmfulness_score" else 1.0
    im = ax.imshow(grid, cmap="RdYlGn" if metric == "refusal_rate" else "RdYlGn_r", vmin=0 if scale == 1 else 1,
                   vmax=scale, aspect="auto")
    for i, c in enumerate(cats):
        for j, m in enumerate(models):
            if (c, m) in cell:
                v = cell[(c, m)]["value"]
                text = f"{100 * v:.0f}%" if scale == 1 else f"{v:.1f}"
                ax.text(j, i, f"{text}\n(n={cell[(c, m)]['n']})", ha="center", va="center", fontsize=6)
    import textwrap

    labels = ["\n".join(textwrap.wrap(m.replace("+", "+ ", 1), 16)) for m in models]  # long names wrap, never overlap
    ax.set_xticks(range(len(models)), labels, fontsize=6, rotation=30, ha="right")
    ax.set_yticks(range(len(cats)), cats, fontsize=7)
    ax.set_title(f"{metric} by category, {datasets[0]} ({judge} judge)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    return _save(fig, path)


def _samples(store: Store, show_responses: bool, per_model: int = 1, most: int = 12) -> list[dict]:
    """A small sample of what was judged: one response per (model, dataset), at most ``most``."""
    out, seen = [], defaultdict(int)
    for r in _rows(store):
        key = (r["model"], r["dataset"])
        if seen[key] >= per_model or len(out) >= most:
            continue
        seen[key] += 1
        hide = r["kind"] == "harmful" and not show_responses and r["outcome"] == "answered"
        response = "(not generated: the prompt exceeds the model's context)" if r["response"] is None else r["response"]
        out.append({"model": r["model"], "dataset": r["dataset"], "prompt": r["prompt"][:160],
                    "response": REDACTED if hide else response, "judge": r["judge"],
                    "refused": bool(r["refused"]) if r["outcome"] == "answered" else r["outcome"]})
    return out


def tamper_plot(summary: dict, path: Path) -> Path | None:
    """Refusal drop against each attack budget (examples x epochs, optimizer steps, device-seconds), with CIs."""
    # a relative drop is undefined (None) where the initial model refused nothing: such points are not drawn
    curves = [{**t, "points": [p for p in t["points"] if p["drop"] is not None]} for t in summary.get("tamper_resistance") or []]
    curves = [t for t in curves if t["points"]]
    if not curves:
        return None
    plt = _pyplot()
    units = [(curves[0]["budget_unit"], "budget")] + [(u, k) for u, k in (("optimizer steps", "steps"),
                                                                          ("training device-seconds", "device_seconds"))
                                                      if all(k in p for t in curves for p in t["points"])]
    fig, axes = plt.subplots(1, len(units), figsize=(5 * len(units), 4), squeeze=False)
    for ax, (unit, key) in zip(axes[0], units):
        for t in curves:
            pts = sorted(t["points"], key=lambda p: p[key])
            err = [[100 * (p["drop"] - p["drop_ci"][0]) for p in pts], [100 * (p["drop_ci"][1] - p["drop"]) for p in pts]]
            text = t["text"] if key == "budget" else t["other_units"][unit]["text"]
            ax.errorbar([p[key] for p in pts], [100 * p["drop"] for p in pts], yerr=err, marker="o", capsize=3,
                        label=f"{t['model']} / {t['recipe']} / {t['judge']} (at {text})")
        ax.axhline(100 * curves[0]["threshold"], color="#999", ls="--", lw=0.8)
        ax.set_ylim(min(-5, ax.get_ylim()[0]), 105)
        ax.set_xscale("log")
        ax.set_xlabel(f"attack budget ({unit})")
        ax.set_ylabel(("refusal drop, % of initial" if curves[0].get("relative") else "refusal drop (points)")
                      + ", 95% CI")
        ax.legend(fontsize=6)
    return _save(fig, path)


def search_plot(summary: dict, path: Path) -> Path | None:
    """Best-found refusal (feasible trials, search prompts) against trials, one line per defense and attack."""
    tuned = (summary.get("defense_matrix") or {}).get("tuned") or []
    if not tuned:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for t in tuned:
        xs = [i + 1 for i, v in enumerate(t["best_so_far"]) if v is not None]
        ax.step(xs, [100 * t["best_so_far"][x - 1] for x in xs], where="post", marker="o",
                label=f"{t['defense']} / {t['recipe']}")
    ax.set_xlabel("trials")
    ax.set_ylabel(f"best refusal so far (%), search prompts, {tuned[0]['search_judge']}")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _result_key(r: dict) -> tuple:
    return tuple(str(r.get(k)) for k in ("model", "dataset", "split", "metric", "judge"))


def keep_or_replace(run_dir: Path, summary: dict, force: bool) -> None:
    """Refuse to replace summary.json with one that lacks some of its results, unless ``force`` (then the old
    summary and reports are kept as numbered copies, ``summary.previous-K.json``, and a line says so)."""
    try:
        old = json.loads((run_dir / "summary.json").read_text())["results"]
        lost = sorted({_result_key(r) for r in old} - {_result_key(r) for r in summary["results"]})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # no earlier report, or one nobody can read: nothing to protect
    if not lost:
        return
    what = (f"{run_dir}: the store gives {len(summary['results'])} results, summary.json has {len(old)} "
            f"({len(lost)} would be lost, e.g. {' '.join(lost[0][:4])})")
    if not force:
        raise FtauditError(f"{what}; nothing was overwritten: check the store, or run `ftaudit report {run_dir} --force` "
                           "to replace the report (the old one is kept as summary.previous-K.json)")
    kept = [keep_copy(run_dir / name) for name in ("summary.json", "report.md", "report.html")]
    say(f"{what}; replaced as asked (--force); the old report is kept as "
        f"{', '.join(k.name for k in kept if k is not None)}", "yellow")


def _gate(run_dir: Path, summary: dict) -> dict | None:
    """Re-check the run's gate (the thresholds `ftaudit gate` last checked, else the spec's gate: block) against
    this summary, so the report never shows a stale verdict; None when no thresholds were given."""
    from ..gate import GATE_FILE, evaluate_gate, load_gate_spec

    spec = load_gate_spec(run_dir, last_checked=True)
    if spec is None or not spec.thresholds():
        return None
    try:
        result = evaluate_gate(summary, spec, str(run_dir))
    except FtauditError as exc:
        return {"error": str(exc), "thresholds": spec.thresholds()}
    atomic_write_text(run_dir / GATE_FILE, json.dumps(result, indent=2))
    return result


def _data_uri(name: str | None, run_dir: Path) -> str | None:
    """A plot as an inline data URI, so report.html is one self-contained file (mail it, attach it to CI)."""
    import base64

    if not name:
        return None
    return "data:image/png;base64," + base64.b64encode((run_dir / name).read_bytes()).decode()


def render_reports(run_dir: Path, summary: dict, store: Store | None, show_responses: bool, gate: dict | None) -> None:
    """Write report.md, report.html and the plots of ``summary`` (as it is: nothing is re-estimated) with the gate result
    ``gate``; ``store`` gives the sample responses (None: no samples)."""
    plots = {"plot": plot(summary, run_dir / "refusal.png"), "scatter": scatter(summary, run_dir / "safety_vs_capability.png"),
             "catplot": category_chart(summary, run_dir / "categories.png"),
             "tamperplot": tamper_plot(summary, run_dir / "tamper.png"),
             "searchplot": search_plot(summary, run_dir / "search.png")}
    ctx = {"s": summary, "pct": _pct, "ci": _ci, "fmt": _fmt_metric, "cat": category_table(summary), "chg": _change,
           "card": verdict_card(summary, gate), "gate": gate,
           "tamper_line": tamper_line, "spread": spread_text, "drop": drop_text, "gnum": gate_number, "defense_tables": matrix_tables(summary.get("defense_matrix") or {}),
           "trust": lambda judge: trust_text(summary.get("judge_validation") or [], judge),
           "samples": _samples(store, show_responses) if store is not None else [], "show_responses": show_responses,
           **{k: v.name if v else None for k, v in plots.items()}}
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    atomic_write_text(run_dir / "report.md", env.get_template("report.md.j2").render(**ctx))
    inline = {k: _data_uri(ctx[k], run_dir) for k in plots}  # the HTML carries its images
    atomic_write_text(run_dir / "report.html", env.get_template("report.html.j2").render(**{**ctx, **inline}))


def rerender_with_gate(run_dir: str | Path, gate: dict) -> list[str]:
    """Render report.md/html again from ``summary.json`` as it is, showing ``gate`` (``ftaudit gate``'s decision: never
    re-decided here); the reports it replaces are kept as numbered copies, whose names it returns (none when the
    summary could not be rendered: then the reports are left as they were)."""
    from ..gate import read_summary

    run_dir = Path(run_dir)
    if not any((run_dir / name).exists() for name in ("report.md", "report.html")):
        return []  # a summary with no report (written by another tool): nothing shows the gate
    summary = {"category_results": [], "changes": [], "capability_changes": [], "costs": [], "judge_validation": [],
               **read_summary(run_dir)}  # a summary from an earlier version may lack the newer lists
    kept = [keep_copy(run_dir / name) for name in ("report.md", "report.html")]
    store = Store(run_dir, existing=True) if (run_dir / "ftaudit.sqlite").is_file() else None
    try:
        render_reports(run_dir, summary, store, False, gate)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a summary.json edited or from another version
        say(f"the report could not be re-rendered from summary.json ({type(exc).__name__}: {exc}); the gate's decision "
            f"stands and is in gate.json; `ftaudit report {run_dir}` renders the report from the store", "yellow")
        return []
    finally:
        if store is not None:
            store.close()
    return [k.name for k in kept if k is not None]


def write_reports(run_dir: str | Path, show_responses: bool = False,
                  enrich: Callable[[dict, list[dict]], dict] | None = None, force: bool = False,
                  existing: bool = False, tamper: dict | None = None) -> dict:
    """Write summary.json, report.md, report.html, tables.{md,tex,csv} and plots into ``run_dir``.

    ``enrich(summary, rows)`` returns keys to add to the summary (an experiment's budgets, tamper-resistance
    and priced costs), computed from the summary built here and the per-prompt judged rows. A summary that
    would lose results of the current one is refused unless ``force`` (see :func:`keep_or_replace`);
    ``existing`` opens only a store that is already there and readable (``ftaudit report``).
    """
    from ..judges.run import compare_run
    from .disagreement import flag_disagreements
    from .tables import write_tables

    run_dir = Path(run_dir)
    store = Store(run_dir, existing=existing)
    try:
        summary = build_summary(store, tamper)
        if existing and not summary["results"]:
            raise FtauditError(f"{run_dir}: the store holds no finished evaluation yet; nothing was written")
        extra = enrich(summary, _rows(store)) if enrich else {}
        summary.update(extra)
        if "costs" in extra:  # the attack's device-seconds (and price): beside every change
            for key in ("changes", "capability_changes"):
                summary[key] = with_costs(summary[key], summary["costs"])
        summary["judge_agreement"] = compare_run(run_dir)
        summary["judges_disagree"] = flag_disagreements(summary)
        keep_or_replace(run_dir, summary, force)
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
        write_tables(summary, run_dir)
        render_reports(run_dir, summary, store, show_responses, _gate(run_dir, summary))
    finally:
        store.close()
    return summary
