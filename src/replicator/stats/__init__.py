"""Statistics over seeds: describe, compare, corrections, rliable-style aggregates, planning.

Every function is vectorised numpy/scipy, never modifies its inputs, draws random numbers from
one stream per group derived from ``seed`` (same seed, identical output), and returns a frozen
dataclass whose ``method`` text says what was computed: n, the statistic, the interval, the test.
numpy, scipy and pandas are imported only when a function runs.
"""

from __future__ import annotations

from .aggregate import (
    AGGREGATES,
    Aggregates,
    Estimate,
    PerformanceProfile,
    aggregate,
    performance_profile,
    probability_of_improvement,
)
from .compare import Comparison, Correction, benjamini_hochberg, compare, correct, holm
from .describe import Description, GroupSummary, describe, iqm
from .power import SeedsNeeded, power_of, seeds_needed

__all__ = [
    "AGGREGATES",
    "Aggregates",
    "Comparison",
    "Correction",
    "Description",
    "Estimate",
    "GroupSummary",
    "PerformanceProfile",
    "SeedsNeeded",
    "aggregate",
    "benjamini_hochberg",
    "compare",
    "correct",
    "describe",
    "holm",
    "iqm",
    "performance_profile",
    "power_of",
    "probability_of_improvement",
    "seeds_needed",
]
