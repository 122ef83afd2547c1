"""Reports: the summary.json contract (:mod:`.summary`), how numbers are written (:mod:`.formatting`), charts
(:mod:`.plots`), the writer of a run's reports (:mod:`.writer`), and an experiment's report with its budgets, prices
and tamper scores (:mod:`.experiment`)."""

from .summary import build_summary
from .writer import write_reports

__all__ = ["build_summary", "write_reports"]
