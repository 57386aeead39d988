"""Release readiness: secret and path scans, repository hygiene, README score, clean export.

``check_release`` finds what must be fixed before a repository goes public; ``export_release``
publishes HEAD as a fresh one-commit repository once the check passes; ``score_readme`` scores a
README on the ML Code Completeness Checklist.
"""

from __future__ import annotations

from .check import FAIL_ON, CheckReport, check_release
from .export import ExportResult, export_release
from .findings import Finding, load_baseline, write_baseline
from .output import format_json, format_sarif, format_text
from .readme import ReadmeItem, ReadmeScore, score_readme

__all__ = [
    "FAIL_ON",
    "CheckReport",
    "ExportResult",
    "Finding",
    "ReadmeItem",
    "ReadmeScore",
    "check_release",
    "export_release",
    "format_json",
    "format_sarif",
    "format_text",
    "load_baseline",
    "score_readme",
    "write_baseline",
]
