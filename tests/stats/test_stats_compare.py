"""compare() and the corrections against scipy's tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from replicator.errors import UsageError
from replicator.stats import benjamini_hochberg, compare, correct, holm

A = np.array([0.82, 0.85, 0.80, 0.86, 0.84, 0.83])
B = np.array([0.78, 0.80, 0.79, 0.77, 0.81])


def test_welch_matches_scipy_ttest_ind() -> None:
    res = compare(A, B, test="welch")
    ref = st.ttest_ind(A, B, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert (res.low, res.high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert res.difference == pytest.approx(A.mean() - B.mean())
    assert "Welch's t-test" in res.method and "n=6 vs 5" in res.method
    assert res.warnings == ()


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mann_whitney_matches_scipy(alternative: str) -> None:
    res = compare(A, B, test="mann-whitney", alternative=alternative)
    ref = st.mannwhitneyu(A, B, alternative=alternative)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    # P(A > B) is the U statistic over the number of pairs
    assert res.prob_greater == pytest.approx(st.mannwhitneyu(A, B).statistic / (A.size * B.size))


def test_paired_tests_match_scipy() -> None:
    x = np.array([0.5, 0.61, 0.55, 0.7, 0.64, 0.58, 0.66])
    y = x - np.array([0.02, 0.01, -0.01, 0.04, 0.03, 0.02, 0.05])
    assert compare(x, y, paired=True).p_value == pytest.approx(st.ttest_rel(x, y).pvalue)
    assert compare(x, y, paired=True, test="mann-whitney").p_value == pytest.approx(
        st.wilcoxon(x, y).pvalue
    )
    with pytest.raises(UsageError, match="paired comparison needs as many values"):
        compare(x, y[:-1], paired=True)


def test_exact_permutation_matches_scipy_permutation_test() -> None:
    def diff(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        return np.mean(a, axis=axis) - np.mean(b, axis=axis)

    ours = compare(A, B, test="permutation", alternative="greater", reps=10_000)
    ref = st.permutation_test((A, B), diff, n_resamples=np.inf, alternative="greater")
    assert "exact (462 rearrangements)" in ours.method
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_monte_carlo_permutation_is_close_to_exact() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.5, 1, 9), rng.normal(0, 1, 9)
    exact = st.permutation_test(
        (a, b),
        lambda x, y, axis: x.mean(axis) - y.mean(axis),
        n_resamples=np.inf,
        alternative="greater",
    ).pvalue
    mc = compare(a, b, test="permutation", alternative="greater", reps=20_000)
    assert "Monte Carlo" in mc.method
    se = np.sqrt(exact * (1 - exact) / 20_000)
    assert abs(mc.p_value - exact) / se < 4


def test_tiny_samples_warn_that_rank_tests_cannot_reach_alpha() -> None:
    res = compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], test="mann-whitney")
    assert res.min_p_value == pytest.approx(0.1)
    assert res.p_value >= 0.1
    assert any("cannot give p below 0.100" in w for w in res.warnings)
    perm = compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], test="permutation")
    assert perm.p_value == pytest.approx(0.1) and perm.warnings
    assert compare([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]).warnings == ()  # Welch can reach it


def test_effect_size_is_hedges_g() -> None:
    res = compare(A, B)
    pooled = np.sqrt(
        ((A.size - 1) * A.var(ddof=1) + (B.size - 1) * B.var(ddof=1)) / (A.size + B.size - 2)
    )
    g = (A.mean() - B.mean()) / pooled * (1 - 3 / (4 * (A.size + B.size) - 9))
    assert res.effect_size == pytest.approx(g)


def test_bootstrap_ci_is_deterministic_and_inputs_untouched() -> None:
    a, b = A.copy(), B.copy()
    one = compare(a, b, test="mann-whitney", seed=3)
    assert one == compare(a, b, test="mann-whitney", seed=3)
    assert one.low < one.difference < one.high
    np.testing.assert_array_equal(a, A)
    np.testing.assert_array_equal(b, B)


def test_holm_and_bh() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    h = holm(p)
    # step-down by hand: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 with running max
    assert h.adjusted == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert h.reject == (True, False, False, True)
    bh = benjamini_hochberg(p)
    assert bh.adjusted == pytest.approx(tuple(st.false_discovery_control(p, method="bh")))
    assert correct(p, method="none").adjusted == tuple(p)
    with pytest.raises(UsageError, match="correction must be holm, bh or none"):
        correct(p, method="bonf")


def test_compare_errors() -> None:
    with pytest.raises(UsageError, match="at least 2 values"):
        compare([1.0], [2.0, 3.0])
    with pytest.raises(UsageError, match="test must be one of welch"):
        compare(A, B, test="z")


def test_paired_permutation_matches_scipy_sign_flips() -> None:
    x = np.array([0.5, 0.61, 0.55, 0.7, 0.64, 0.58, 0.66, 0.6])
    y = x - np.array([0.02, 0.01, -0.01, 0.04, 0.03, 0.02, 0.05, -0.02])
    ours = compare(x, y, test="permutation", paired=True, alternative="greater")
    ref = st.permutation_test(
        (x, y),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        permutation_type="samples",
        n_resamples=np.inf,
        alternative="greater",
    )
    assert "exact (256 sign flips)" in ours.method
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_welch_interval_keeps_its_level_with_three_seeds() -> None:
    rng = np.random.default_rng(5)
    sims = 400
    a, b = rng.normal(0.3, 1, (sims, 3)), rng.normal(0, 1, (sims, 3))
    results = [compare(a[i], b[i]) for i in range(sims)]
    covered = [r.low <= 0.3 <= r.high for r in results]
    assert abs(np.mean(covered) - 0.95) < 3 * np.sqrt(0.95 * 0.05 / sims)
