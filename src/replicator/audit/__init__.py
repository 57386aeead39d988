"""The determinism audit: what makes a run non-repeatable, with file, line and the fix.

scan_paths(paths) -> [Finding]   the static half: known sources in the code (AST)
"""

from __future__ import annotations

from .static import RULES, Finding, scan_file, scan_paths

__all__ = ["RULES", "Finding", "scan_file", "scan_paths"]
