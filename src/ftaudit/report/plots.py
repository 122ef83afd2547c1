"""The report's charts (refusal, safety against capability, categories, tamper curve, search), each a PNG or None."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from ..atomic import atomic_file


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
    # the API rubric judge first, then refusal, then a local harm judge (WEAK against people, docs/judges.md)
    local = [j for j in dict.fromkeys(r["judge"] for r in rows if r["metric"] == "harmfulness_score") if j != "harmfulness"]
    pick = next(((m, j) for m, j in [("harmfulness_score", "harmfulness"), *(("refusal_rate", j) for j in judges),
                                      *(("harmfulness_score", j) for j in local)]
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


def both_axes_plot(summary: dict, path: Path) -> Path | None:
    """A defense on both axes: refusal after the job (y) against the customer task's accuracy (x), one point per
    defense and job, 95% intervals as bars, for the first judge; the undefended jobs are the reference."""
    cells = [c for c in (summary.get("defense_matrix") or {}).get("cells") or [] if c.get("task") and not c["tuned"]]
    if not cells:
        return None
    judge = cells[0]["judge"]
    cells = [c for c in cells if c["judge"] == judge]  # one judge per plot: judges are never mixed
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    defenses = list(dict.fromkeys(c["defense"] for c in cells))
    markers = "os^DvP*X<>"
    for i, d in enumerate(defenses):
        mine = [c for c in cells if c["defense"] == d]
        xs = [100 * c["task"]["value"] for c in mine]
        ys = [100 * c["refusal"]["value"] for c in mine]
        ax.errorbar(xs, ys, xerr=[[x - 100 * c["task"]["ci"][0] for x, c in zip(xs, mine)],
                                  [100 * c["task"]["ci"][1] - x for x, c in zip(xs, mine)]],
                    yerr=[[y - 100 * c["refusal"]["ci"][0] for y, c in zip(ys, mine)],
                          [100 * c["refusal"]["ci"][1] - y for y, c in zip(ys, mine)]],
                    fmt=markers[i % len(markers)], capsize=2, label=d, alpha=0.85)
        for x, y, c in zip(xs, ys, mine):
            share = re.search(r"poison=([0-9.]+)|-p([0-9.]+)$", c["attack"])
            ax.annotate(f"p={share.group(1) or share.group(2)}" if share else c["attack"], (x, y), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"customer task accuracy (%), {cells[0]['task']['metric']}, 95% CI")
    ax.set_ylabel(f"refusal after the job (%), {judge}, 95% CI")
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=7, title="defense", title_fontsize=7)
    return _save(fig, path)
