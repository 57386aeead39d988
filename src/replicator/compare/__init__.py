"""Comparing recorded runs: what differs between two runs (seeds, config, data, code, metrics) and
between two environments, ranked by how likely each difference changes a result."""

from __future__ import annotations

from .environment import EnvDiff, EnvDifference, diff_environments, diff_run_environments
from .runs import Difference, RunDiff, diff_runs

__all__ = [
    "Difference",
    "EnvDiff",
    "EnvDifference",
    "RunDiff",
    "diff_environments",
    "diff_run_environments",
    "diff_runs",
]
