"""rliable-style aggregates: point estimates equal rliable's, CIs agree within Monte Carlo error."""

from __future__ import annotations

import numpy as np
import pytest

from replicator.errors import UsageError
from replicator.stats import aggregate, performance_profile, probability_of_improvement

rly = pytest.importorskip("rliable.library")
metrics = pytest.importorskip("rliable.metrics")

RNG = np.random.default_rng(11)
X = RNG.beta(2, 3, size=(6, 5))
Y = RNG.beta(3, 3, size=(6, 5))
RLIABLE = {
    "iqm": metrics.aggregate_iqm,
    "mean": metrics.aggregate_mean,
    "median": metrics.aggregate_median,
    "optimality_gap": metrics.aggregate_optimality_gap,
}


def mc_z(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    se = np.sqrt(ours.var(axis=0, ddof=1) / len(ours) + theirs.var(axis=0, ddof=1) / len(theirs))
    return np.abs(ours.mean(axis=0) - theirs.mean(axis=0)) / se


def test_point_estimates_equal_rliable() -> None:
    res = aggregate({"x": X}, reps=10)
    for name, func in RLIABLE.items():
        assert res.estimates["x"][name].value == pytest.approx(func(X), rel=1e-12)
    est, text = probability_of_improvement(X, Y, reps=10)
    assert est.value == pytest.approx(metrics.probability_of_improvement(X, Y), rel=1e-12)
    assert "averaged over 5 task(s)" in text


def test_stratified_bootstrap_cis_agree_with_rliable() -> None:
    reps, repeats = 1500, 10
    ours, theirs = [], []
    for k in range(repeats):
        res = aggregate({"x": X}, reps=reps, seed=k)
        ours.append(
            [
                v
                for name in RLIABLE
                for v in (res.estimates["x"][name].low, res.estimates["x"][name].high)
            ]
        )
        # rliable ignores random_state and draws from numpy's global stream
        np.random.seed(1000 + k)
        _, cis = rly.get_interval_estimates(
            {"x": X},
            lambda s: np.array([f(s) for f in RLIABLE.values()]),
            reps=reps,
        )
        theirs.append(cis["x"].T.ravel())
    z = mc_z(np.array(ours), np.array(theirs))
    assert np.all(z < 3), z


def test_probability_of_improvement_ci_agrees_with_rliable() -> None:
    reps, repeats = 250, 6
    ours, theirs = [], []
    for k in range(repeats):
        est, _ = probability_of_improvement(X, Y, reps=reps, seed=k)
        ours.append([est.low, est.high])
        np.random.seed(2000 + k)
        _, cis = rly.get_interval_estimates(
            {"xy": (X, Y)}, metrics.probability_of_improvement, reps=reps
        )
        theirs.append(cis["xy"].ravel())
    assert np.all(mc_z(np.array(ours), np.array(theirs)) < 3)


def test_performance_profile_matches_rliable_point_estimates() -> None:
    taus = np.linspace(0, 1, 11)
    prof = performance_profile({"x": X, "y": Y}, taus, reps=200)
    ref, _ = rly.create_performance_profile({"x": X, "y": Y}, taus, reps=20)
    for name in ("x", "y"):
        np.testing.assert_allclose(prof.profiles[name], ref[name])
        assert np.all(prof.low[name] <= prof.profiles[name] + 1e-12)
        assert np.all(prof.high[name] >= prof.profiles[name] - 1e-12)


def test_same_seed_same_result_and_inputs_untouched() -> None:
    x = X.copy()
    one = aggregate({"x": x, "y": Y}, reps=500, seed=4)
    two = aggregate({"y": Y, "x": x}, reps=500, seed=4)
    assert one.estimates["x"] == two.estimates["x"]  # order of methods does not matter
    assert aggregate({"x": x}, reps=500, seed=5).estimates["x"] != one.estimates["x"]
    np.testing.assert_array_equal(x, X)
    assert "stratified bootstrap" in one.method and "500 resamples" in one.method


def test_aggregate_errors() -> None:
    with pytest.raises(UsageError, match="Unknown aggregate"):
        aggregate({"x": X}, aggregates=("mode",))
    with pytest.raises(UsageError, match="same number of tasks"):
        aggregate({"x": X, "y": Y[:, :3]})
    with pytest.raises(UsageError, match="hold NaN"):
        aggregate({"x": np.full((2, 2), np.nan)})


def test_performance_profile_bands_agree_with_rliable() -> None:
    taus = np.array([0.2, 0.4, 0.6])
    reps, repeats = 300, 8
    ours, theirs = [], []
    for k in range(repeats):
        prof = performance_profile({"x": X}, taus, reps=reps, seed=k)
        ours.append(np.concatenate([prof.low["x"], prof.high["x"]]))
        np.random.seed(3000 + k)
        _, cis = rly.create_performance_profile({"x": X}, taus, reps=reps)
        theirs.append(np.asarray(cis["x"]).ravel())
    a, b = np.array(ours), np.array(theirs)
    se = np.sqrt(a.var(axis=0, ddof=1) / repeats + b.var(axis=0, ddof=1) / repeats)
    diff = np.abs(a.mean(axis=0) - b.mean(axis=0))
    # profile values are fractions of the 30 scores: an endpoint that never varies must agree
    # to within one step, the others within Monte Carlo error
    noisy = se > 0
    assert np.all(diff[noisy] / se[noisy] < 3), (diff, se)
    assert np.all(diff[~noisy] <= 1 / X.size + 1e-12), diff
