"""Paper-shaped tables (Markdown, LaTeX, CSV).

``tables.*``: Qi et al.'s Tables 1-3, one row per fine-tuned model and dataset, initial -> fine-tuned ->
change for each metric. ``tables-by-model.*``: Lermen et al.'s layout, one row per model (initial and
attacked) with its refusal rates and capability scores side by side.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..atomic import atomic_write_text
from ..metrics import is_rate
from .formatting import drop_text, fmt_metric, spread_text
from .summary import natural_key

HEADER = ["model", "against", "attack", "dataset", "judge", "metric", "initial", "fine-tuned", "change", "95% CI", "n",
          "verdict", "seed spread"]


def _dataset(row: dict) -> str:
    """The dataset, with its split where it is not the usual held-out one (two splits never share a cell)."""
    split = row.get("split")
    return row["dataset"] if split in (None, "", "eval", "all", "test", "lm-eval") else f"{row['dataset']}:{split}"


def table_rows(summary: dict) -> list[list[str]]:

    rows = []
    for c in summary["changes"] + summary.get("capability_changes", []):
        m = c["metric"]
        scale, digits = (100, 1) if is_rate(m) else (1, 3)
        lo, hi = (scale * x for x in c["change"]["ci"])
        rows.append([c["model"], c.get("initial_model") or "-", c["attack"], _dataset(c), c["judge"], m,
                     fmt_metric(m, c["initial"]), fmt_metric(m, c["fine_tuned"]),
                     f"{scale * c['change']['value']:+.{digits}f}", f"[{lo:.{digits}f}, {hi:.{digits}f}]",
                     str(c["change"]["n"]), drop_text(c), spread_text(c) or "-"])
    return rows


def _latex_escape(text: str) -> str:
    out = text.replace("\\", r"\textbackslash{}")
    for a, b in (("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        out = out.replace(a, b)
    return out.replace(r"\textbackslash\{\}", r"\textbackslash{}")


def by_model_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """One row per model, one column per (dataset, metric, judge); attack-success rates are left out (1 - refusal)."""

    cells: dict[str, dict[str, str]] = {}
    columns: dict[str, None] = {}
    for r in summary.get("results", []):
        if r["metric"] == "attack_success_rate":
            continue
        column = f"{_dataset(r)} {r['metric']} ({r['judge']})"
        columns[column] = None
        cells.setdefault(r["model"], {})[column] = fmt_metric(r["metric"], r["value"])
    models = sorted(cells, key=lambda m: (m != "baseline", "+" in m, natural_key(m)))
    return ["model", *columns], [[m, *(cells[m].get(c, "") for c in columns)] for m in models]


def _write(header: list[str], rows: list[list[str]], out_dir: Path, stem: str, text_cols: int) -> list[Path]:
    """``stem``.{csv,md,tex}; the first ``text_cols`` columns are left-aligned in LaTeX, the rest right-aligned."""
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    md = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n" + "".join("| " + " | ".join(r) + " |\n" for r in rows)
    tex = ("\\begin{tabular}{" + "l" * text_cols + "r" * (len(header) - text_cols) + "}\n\\toprule\n"
           + " & ".join(_latex_escape(h) for h in header) + " \\\\\n\\midrule\n"
           + "".join(" & ".join(_latex_escape(x) for x in r) + " \\\\\n" for r in rows) + "\\bottomrule\n\\end{tabular}\n")
    paths = []
    for suffix, text in ((".csv", buf.getvalue()), (".md", md), (".tex", tex)):
        atomic_write_text(out_dir / f"{stem}{suffix}", text)
        paths.append(out_dir / f"{stem}{suffix}")
    return paths


def write_tables(summary: dict, out_dir: Path) -> list[Path]:
    """Write tables.{csv,md,tex} (Qi et al. layout) and tables-by-model.{csv,md,tex} (Lermen et al. layout)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return (_write(HEADER, table_rows(summary), out_dir, "tables", text_cols=6)
            + _write(*by_model_rows(summary), out_dir, "tables-by-model", text_cols=1))
