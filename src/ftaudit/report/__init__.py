"""summary.json, report.md, report.html and a plot, all rendered from the run's store."""

from .render import build_summary, write_reports

__all__ = ["build_summary", "write_reports"]
