"""Paper-shaped tables (Markdown, LaTeX, CSV) in the layout of Qi et al.'s Tables 1-3:
one row per fine-tuned model and dataset, initial -> fine-tuned -> change for each metric."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..metrics import is_rate
from .render import _fmt_metric

HEADER = ["model", "attack", "dataset", "judge", "metric", "initial", "fine-tuned", "change", "95% CI", "n"]


def table_rows(summary: dict) -> list[list[str]]:
    rows = []
    for c in summary["changes"] + summary.get("capability_changes", []):
        m = c["metric"]
        scale, digits = (100, 1) if is_rate(m) else (1, 3)
        lo, hi = (scale * x for x in c["change"]["ci"])
        rows.append([c["model"], c["attack"], c["dataset"], c["judge"], m, _fmt_metric(m, c["initial"]),
                     _fmt_metric(m, c["fine_tuned"]), f"{scale * c['change']['value']:+.{digits}f}",
                     f"[{lo:.{digits}f}, {hi:.{digits}f}]", str(c["change"]["n"])])
    return rows


def _latex_escape(text: str) -> str:
    out = text.replace("\\", r"\textbackslash{}")
    for a, b in (("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        out = out.replace(a, b)
    return out.replace(r"\textbackslash\{\}", r"\textbackslash{}")


def write_tables(summary: dict, out_dir: Path) -> list[Path]:
    """Write tables.md, tables.tex and tables.csv; return their paths."""
    rows = table_rows(summary)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    csv.writer(buf).writerows([HEADER, *rows])
    md = "| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER) + "\n" + "".join("| " + " | ".join(r) + " |\n" for r in rows)
    tex = ("\\begin{tabular}{" + "l" * 5 + "r" * 5 + "}\n\\toprule\n" + " & ".join(HEADER) + " \\\\\n\\midrule\n"
           + "".join(" & ".join(_latex_escape(x) for x in r) + " \\\\\n" for r in rows) + "\\bottomrule\n\\end{tabular}\n")
    paths = []
    for name, text in (("tables.csv", buf.getvalue()), ("tables.md", md), ("tables.tex", tex)):
        (out_dir / name).write_text(text)
        paths.append(out_dir / name)
    return paths
