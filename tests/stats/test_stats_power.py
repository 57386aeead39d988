"""seeds_needed(): the noncentral-t answer, checked by simulating Welch's t-test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from replicator.errors import UsageError
from replicator.stats import power_of, seeds_needed


def test_d1_needs_17_seeds_per_arm() -> None:
    res = seeds_needed(1.0, 1.0, alpha=0.05, power=0.8)
    assert res.n == 17 and int(res) == 17
    assert power_of(16, 1.0) < 0.8 <= res.power
    assert "two-sided two-sample t-test" in res.method and "Cohen's d = 1" in res.method
    assert seeds_needed(0.02, 0.04).n == seeds_needed(0.5).n  # only effect/sd matters


def test_power_agrees_with_simulation() -> None:
    rng = np.random.default_rng(0)
    sims, n = 4000, 17
    a = rng.normal(1.0, 1.0, size=(sims, n))
    b = rng.normal(0.0, 1.0, size=(sims, n))
    hits = float(np.mean(st.ttest_ind(a, b, axis=1).pvalue < 0.05))
    expected = power_of(n, 1.0)
    assert abs(hits - expected) / np.sqrt(expected * (1 - expected) / sims) < 3


def test_seeds_needed_errors() -> None:
    with pytest.raises(UsageError, match="sd must be a positive number"):
        seeds_needed(1.0, 0.0)
    with pytest.raises(UsageError, match="non-zero difference"):
        seeds_needed(0.0)
    with pytest.raises(UsageError, match="too small to detect"):
        seeds_needed(1e-4)
