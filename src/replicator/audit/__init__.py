"""The determinism audit: what makes a run non-repeatable, with file, line and the fix.

audit(command or run) -> AuditReport   runs, first divergence, one re-run per factor, findings
format_audit(report) -> [str]         the report as text
scan_paths(paths) -> [Finding]        the static half: known sources in the code (AST)
likely_causes(run_dir, ...) -> [str]  for ``replicator reproduce``: why a run may not come back
"""

from __future__ import annotations

from .core import AuditReport, FactorResult, audit, format_audit
from .dynamic import FACTORS, Divergence
from .explain import likely_causes
from .static import RULES, Finding, imported_modules, scan_file, scan_paths

__all__ = [
    "FACTORS",
    "RULES",
    "AuditReport",
    "Divergence",
    "FactorResult",
    "Finding",
    "audit",
    "format_audit",
    "imported_modules",
    "likely_causes",
    "scan_file",
    "scan_paths",
]
