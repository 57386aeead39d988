"""``compare`` two samples (difference, CI, effect size, p-value, P(A > B)) and correct many p-values.

Tests: ``welch`` (Welch's unequal-variance t-test; paired: the paired t-test), ``mann-whitney``
(Mann-Whitney U; paired: Wilcoxon signed-rank) and ``permutation`` (difference in means; exact
when the number of rearrangements is at most ``reps``, otherwise Monte Carlo with
``p = (1 + hits) / (1 + reps)``; paired: sign flips).

Rank and permutation tests have a smallest attainable p-value set by the sample sizes alone
(3 vs 3 seeds: 2/20 = 0.1 two-sided); when it exceeds ``alpha`` the result carries a warning,
because such a test can never report a significant difference whatever the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import UsageError
from ._common import as_sample, fmt, level_text, rng_for

__all__ = ["Comparison", "Correction", "benjamini_hochberg", "compare", "correct", "holm"]

TESTS = ("welch", "mann-whitney", "permutation")
ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`: A minus B, with the test and interval named in ``method``."""

    difference: float
    low: float
    high: float
    level: float
    effect_size: float
    p_value: float
    prob_greater: float
    n_a: int
    n_b: int
    test: str
    paired: bool
    alternative: str
    min_p_value: float
    warnings: tuple[str, ...]
    method: str

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def _min_p(test: str, paired: bool, n_a: int, n_b: int, alternative: str) -> float:
    """Smallest p-value the test can produce for these sample sizes (0 for the t-tests)."""
    if test == "welch":
        return 0.0
    sides = 2.0 if alternative == "two-sided" else 1.0
    if paired:
        return min(1.0, sides / 2.0**n_a)
    return min(1.0, sides / math.comb(n_a + n_b, n_a))


def _prob_greater(a: Any, b: Any, paired: bool) -> float:
    """P(A > B) + P(A = B)/2 over all pairs (unpaired) or over matched pairs (paired)."""
    import numpy as np

    if paired:
        return float(np.mean((a > b) + 0.5 * (a == b)))
    diff = a[:, None] - b[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def _permutation_p(
    a: Any, b: Any, *, paired: bool, alternative: str, reps: int, rng: Any
) -> tuple[float, str]:
    import itertools

    import numpy as np

    def tail(stats: Any, observed: float) -> float:
        eps = 1e-12 * max(1.0, abs(observed))  # floating-point ties count as extreme
        if alternative == "greater":
            return float(np.sum(stats >= observed - eps))
        if alternative == "less":
            return float(np.sum(stats <= observed + eps))
        return float(np.sum(np.abs(stats) >= abs(observed) - eps))

    if paired:
        d = a - b
        observed = float(d.mean())
        n = d.size
        if 2**n <= reps:
            signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
            return tail((signs * d).mean(axis=1), observed) / 2**n, f"exact ({2**n} sign flips)"
        signs = rng.choice(np.array([-1.0, 1.0]), size=(reps, n))
        return (1 + tail((signs * d).mean(axis=1), observed)) / (
            1 + reps
        ), f"Monte Carlo ({reps:,} sign flips)"
    pooled = np.concatenate([a, b])
    n_a, n = a.size, pooled.size
    observed = float(a.mean() - b.mean())
    total = pooled.sum()
    count = math.comb(n, n_a)
    if count <= reps:
        combos = np.array(list(itertools.combinations(range(n), n_a)))
        sum_a = pooled[combos].sum(axis=1)
        stats = sum_a / n_a - (total - sum_a) / (n - n_a)
        return tail(stats, observed) / count, f"exact ({count:,} rearrangements)"
    perms = rng.permuted(np.tile(pooled, (reps, 1)), axis=1)
    sum_a = perms[:, :n_a].sum(axis=1)
    stats = sum_a / n_a - (total - sum_a) / (n - n_a)
    return (1 + tail(stats, observed)) / (1 + reps), f"Monte Carlo ({reps:,} rearrangements)"


def _bootstrap_diff_ci(
    a: Any, b: Any, *, paired: bool, level: float, reps: int, rng: Any
) -> tuple[float, float]:
    import numpy as np

    if paired:
        d = a - b
        boot = d[rng.integers(0, d.size, size=(reps, d.size))].mean(axis=1)
    else:
        boot = a[rng.integers(0, a.size, size=(reps, a.size))].mean(axis=1) - b[
            rng.integers(0, b.size, size=(reps, b.size))
        ].mean(axis=1)
    q = (1 - level) / 2
    low, high = np.quantile(boot, [q, 1 - q])
    return float(low), float(high)


def compare(
    a: Any,
    b: Any,
    *,
    test: str = "welch",
    paired: bool = False,
    alternative: str = "two-sided",
    alpha: float = 0.05,
    level: float = 0.95,
    reps: int = 10_000,
    seed: int | None = 0,
    names: tuple[str, str] = ("A", "B"),
) -> Comparison:
    """Compare sample ``a`` with sample ``b`` (e.g. a method's seeds against a baseline's).

    ``difference`` is mean(a) - mean(b) (paired: the mean of the differences). Its interval is the
    Welch (or paired) t-interval for ``test="welch"`` and a percentile bootstrap otherwise.
    ``effect_size`` is Hedges' g (pooled SD; paired: mean difference over SD of differences,
    small-sample corrected). ``prob_greater`` is P(A > B) counting ties as one half (the
    common-language effect size; rliable's per-task probability of improvement).
    """
    x, y = _samples(a, b, test=test, alternative=alternative, paired=paired, names=names)
    rng = rng_for(seed, f"compare:{names[0]}:{names[1]}")
    n_a, n_b = int(x.size), int(y.size)
    diff, effect = _difference_and_effect(x, y, paired=paired)
    if test == "welch":
        result = _t_test(x, y, paired=paired, alternative=alternative, level=level)
    else:
        result = _rank_or_permutation_test(
            x, y, test=test, paired=paired, alternative=alternative, reps=reps, rng=rng
        )
        low, high = _bootstrap_diff_ci(x, y, paired=paired, level=level, reps=reps, rng=rng)
        interval = (
            f"{level_text(level)} percentile bootstrap interval ({reps:,} resamples, seed {seed})"
        )
        result = result._replace(low=low, high=high, interval=interval)
    warnings = list(result.warnings)
    min_p = _min_p(test, paired, n_a, n_b, alternative)
    if min_p > alpha:
        warnings.append(
            f"With {n_a} vs {n_b} values the {result.name.split(',')[0]} cannot give p below "
            f"{fmt(min_p, 3)}, so it can never reach alpha={alpha:g}: run more seeds or use "
            "Welch's t-test."
        )
    method = (
        f"{names[0]} - {names[1]}: difference of means with {result.interval}; {result.name} "
        f"({alternative}); n={n_a} vs {n_b}; effect size Hedges' g; P({names[0]} > {names[1]}) "
        "over all pairs, ties counted half"
    )
    return Comparison(
        difference=diff,
        low=result.low,
        high=result.high,
        level=level,
        effect_size=float(effect),
        p_value=result.p,
        prob_greater=_prob_greater(x, y, paired),
        n_a=n_a,
        n_b=n_b,
        test=test,
        paired=paired,
        alternative=alternative,
        min_p_value=min_p,
        warnings=tuple(warnings),
        method=method,
    )


def _samples(
    a: Any, b: Any, *, test: str, alternative: str, paired: bool, names: tuple[str, str]
) -> tuple[Any, Any]:
    """Both samples as float arrays, after checking the options and the sample sizes."""
    if test not in TESTS:
        raise UsageError(f"test must be one of {', '.join(TESTS)}; got {test!r}.")
    if alternative not in ALTERNATIVES:
        raise UsageError(
            f"alternative must be one of {', '.join(ALTERNATIVES)}; got {alternative!r}."
        )
    x = as_sample(a, name=names[0])
    y = as_sample(b, name=names[1])
    if paired and x.size != y.size:
        raise UsageError(
            f"A paired comparison needs as many values in {names[0]} ({x.size}) as in {names[1]} "
            f"({y.size}); pair runs by seed, or use paired=False."
        )
    if x.size < 2 or y.size < 2:
        raise UsageError(
            f"Each side needs at least 2 values to compare; got {x.size} and {y.size}. Run more seeds."
        )
    return x, y


def _difference_and_effect(x: Any, y: Any, *, paired: bool) -> tuple[float, float]:
    """The difference of means and Hedges' g (paired: over the SD of the differences)."""
    n_a, n_b = int(x.size), int(y.size)
    if paired:
        d = x - y
        diff = float(d.mean())
        sd = float(d.std(ddof=1))
        correction = 1 - 3 / (4 * (n_a - 1) - 1)
    else:
        diff = float(x.mean() - y.mean())
        sd = math.sqrt(((n_a - 1) * x.var(ddof=1) + (n_b - 1) * y.var(ddof=1)) / (n_a + n_b - 2))
        correction = 1 - 3 / (4 * (n_a + n_b) - 9)
    effect = diff / sd * correction if sd > 0 else math.copysign(math.inf, diff) if diff else 0.0
    return diff, effect


class _TestResult(NamedTuple):
    p: float
    low: float
    high: float
    name: str  # of the test
    interval: str  # how the interval was computed
    warnings: tuple[str, ...] = ()


def _t_test(x: Any, y: Any, *, paired: bool, alternative: str, level: float) -> _TestResult:
    """Welch's (or the paired) t-test, with its t-interval."""
    from scipy import stats as st

    if paired:
        res = st.ttest_rel(x, y, alternative=alternative)
        name = "paired t-test"
    else:
        res = st.ttest_ind(x, y, equal_var=False, alternative=alternative)
        name = "Welch's t-test"
    p = float(res.pvalue)
    ci = res.confidence_interval(confidence_level=level)
    # A degenerate sample (zero variance on both sides) gives NaN from scipy; say so.
    warnings = (
        ("Both samples have zero variance; the t-test is undefined.",) if math.isnan(p) else ()
    )
    interval = f"{level_text(level)} {'paired ' if paired else 'Welch '}t-interval"
    return _TestResult(p, float(ci.low), float(ci.high), name, interval, warnings)


def _rank_or_permutation_test(
    x: Any, y: Any, *, test: str, paired: bool, alternative: str, reps: int, rng: Any
) -> _TestResult:
    """The p-value of a rank or permutation test (the caller adds a bootstrap interval)."""
    import numpy as np
    from scipy import stats as st

    if test == "permutation":
        p, how = _permutation_p(x, y, paired=paired, alternative=alternative, reps=reps, rng=rng)
        name = f"permutation test of the mean difference, {how}"
    elif paired:
        p = 1.0 if np.all(x == y) else float(st.wilcoxon(x, y, alternative=alternative).pvalue)
        name = "Wilcoxon signed-rank test"
    else:
        p = float(st.mannwhitneyu(x, y, alternative=alternative, method="auto").pvalue)
        name = "Mann-Whitney U test"
    return _TestResult(p, math.nan, math.nan, name, "")


@dataclass(frozen=True)
class Correction:
    """Adjusted p-values in input order, and which hypotheses are rejected at ``alpha``."""

    p_values: tuple[float, ...]
    adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    alpha: float
    method: str


def holm(p_values: Sequence[float], *, alpha: float = 0.05) -> Correction:
    """Holm's step-down correction (controls the family-wise error rate)."""
    import numpy as np

    def step(sorted_p: np.ndarray, m: int) -> np.ndarray:
        return np.maximum.accumulate((m - np.arange(m)) * sorted_p)

    return _correct(p_values, alpha, "Holm", step)


def benjamini_hochberg(p_values: Sequence[float], *, alpha: float = 0.05) -> Correction:
    """Benjamini-Hochberg step-up correction (controls the false discovery rate)."""
    import numpy as np

    def step(sorted_p: np.ndarray, m: int) -> np.ndarray:
        scaled = sorted_p * m / np.arange(1, m + 1)
        return np.minimum.accumulate(scaled[::-1])[::-1]

    return _correct(p_values, alpha, "Benjamini-Hochberg", step)


def _correct(p_values: Sequence[float], alpha: float, name: str, step: Any) -> Correction:
    """Adjust p-values with ``step`` (given them in ascending order), capped at 1."""
    import numpy as np

    p = np.array(p_values, dtype=float, copy=True)
    m = p.size
    if m == 0:
        return Correction((), (), (), alpha, f"{name} (no p-values)")
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(step(p[order], m), 1.0)
    return Correction(
        tuple(p.tolist()),
        tuple(adjusted.tolist()),
        tuple(bool(v) for v in adjusted < alpha),
        alpha,
        f"{name}-corrected over {m} comparison(s)",
    )


def correct(p_values: Sequence[float], *, method: str = "holm", alpha: float = 0.05) -> Correction:
    """``method``: holm, bh (Benjamini-Hochberg) or none."""
    if method == "holm":
        return holm(p_values, alpha=alpha)
    if method in ("bh", "fdr", "benjamini-hochberg"):
        return benjamini_hochberg(p_values, alpha=alpha)
    if method == "none":
        p = tuple(float(v) for v in p_values)
        return Correction(p, p, tuple(v < alpha for v in p), alpha, "uncorrected")
    raise UsageError(f"correction must be holm, bh or none; got {method!r}.")
