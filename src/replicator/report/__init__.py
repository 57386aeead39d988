"""Reports over seeds: results tables (Markdown, LaTeX, HTML, CSV), plots, a self-contained HTML page.

``build_report(experiment, ...)`` + ``render_report(report, format)`` is what ``replicator
report`` runs; ``results_table`` and the ``to_*`` renderers work on any runs DataFrame; the plot
functions live in :mod:`replicator.report.plots` (matplotlib, the ``plot`` extra).
"""

from __future__ import annotations

from .build import FORMATS, Report, build_report, render_report, write_report
from .results import ResultRow, ResultsTable, results_table
from .tables import to_csv, to_html, to_latex, to_markdown

__all__ = [
    "FORMATS",
    "Report",
    "ResultRow",
    "ResultsTable",
    "build_report",
    "render_report",
    "results_table",
    "to_csv",
    "to_html",
    "to_latex",
    "to_markdown",
    "write_report",
]
