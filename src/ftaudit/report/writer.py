"""Write a run directory's reports: summary.json (never losing results silently), report.md, the self-contained
report.html, tables and plots, and re-render them with a gate's decision.

Responses to harmful prompts are redacted unless ``show_responses`` is set.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..atomic import atomic_write_text, keep_copy
from ..errors import FtauditError
from ..gating import gate_number
from ..judges.validate import trust_text
from ..progress import say
from ..store import Store
from .defense_matrix import matrix_tables
from .prefill import prefill_tables
from .formatting import category_table, ci_text, drop_text, fmt_change, fmt_metric, pct, spread_text, tamper_line
from .plots import both_axes_plot, category_chart, plot, scatter, search_plot, tamper_plot
from .summary import build_summary, store_rows, with_costs
from .verdict import verdict_card

REDACTED = "[redacted: response to a harmful prompt; rerun `ftaudit report --show-responses` to see it]"
__all__ = ["keep_or_replace", "render_reports", "rerender_with_gate", "write_reports"]


def _samples(store: Store, show_responses: bool, per_model: int = 1, most: int = 12) -> list[dict]:
    """A small sample of what was judged: one response per (model, dataset), at most ``most``."""
    out, seen = [], defaultdict(int)
    for r in store_rows(store):
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
    from ..gating import GATE_FILE, evaluate_gate, load_gate_spec

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
             "searchplot": search_plot(summary, run_dir / "search.png"),
             "axesplot": both_axes_plot(summary, run_dir / "defense_both_axes.png")}
    ctx = {"s": summary, "pct": pct, "ci": ci_text, "fmt": fmt_metric, "cat": category_table(summary), "chg": fmt_change,
           "card": verdict_card(summary, gate), "gate": gate,
           "tamper_line": tamper_line, "spread": spread_text, "drop": drop_text, "gnum": gate_number, "defense_tables": matrix_tables(summary.get("defense_matrix") or {}) + prefill_tables(summary.get("prefill")),
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
    from ..gating import read_summary

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
                  enrich: Callable[[dict, list[dict], list[dict]], dict] | None = None, force: bool = False,
                  existing: bool = False, tamper: dict | None = None) -> dict:
    """Write summary.json, report.md, report.html, tables.{md,tex,csv} and plots into ``run_dir``.

    ``enrich(summary, rows, capability rows)`` returns keys to add to the summary (an experiment's budgets, tamper-resistance
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
        extra = enrich(summary, store_rows(store), store.capability_rows()) if enrich else {}
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
