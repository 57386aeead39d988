"""describe(): centres, intervals (t and bootstrap) against scipy, determinism, no mutation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from replicator.errors import UsageError
from replicator.stats import describe, iqm


def mc_z(ours: list[float], theirs: list[float]) -> float:
    """z-score of the difference of two sets of Monte Carlo estimates of the same quantity."""
    a, b = np.asarray(ours), np.asarray(theirs)
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return (
        float(abs(a.mean() - b.mean()) / se)
        if se > 0
        else float(abs(a.mean() - b.mean()) > 1e-12) * 99
    )


def test_t_interval_matches_scipy_below_ten_seeds() -> None:
    x = np.array([0.81, 0.79, 0.84, 0.80, 0.83])
    d = describe({"mlp": x})
    g = d["mlp"]
    low, high = st.t.interval(0.95, x.size - 1, loc=x.mean(), scale=st.sem(x))
    assert g.low == pytest.approx(low, rel=1e-12) and g.high == pytest.approx(high, rel=1e-12)
    assert g.std == pytest.approx(x.std(ddof=1)) and g.n == 5
    assert g.interval == "95% t-interval"
    assert d.method.startswith("mean with 95% t-interval; n=5 per group")


def test_bootstrap_interval_agrees_with_scipy_bootstrap() -> None:
    x = np.random.default_rng(3).gamma(2.0, 1.0, size=30)
    ours_low, ours_high, their_low, their_high = [], [], [], []
    for seed in range(6):
        g = describe({"a": x}, reps=4000, seed=seed)["a"]
        ours_low.append(g.low)
        ours_high.append(g.high)
        res = st.bootstrap(
            (x,), np.mean, n_resamples=4000, method="percentile", random_state=100 + seed
        )
        their_low.append(res.confidence_interval.low)
        their_high.append(res.confidence_interval.high)
    assert "percentile bootstrap" in describe({"a": x}).groups[0].interval
    assert mc_z(ours_low, their_low) < 3
    assert mc_z(ours_high, their_high) < 3


@pytest.mark.parametrize("center", ["median", "iqm"])
def test_robust_centres_agree_with_numpy_and_scipy(center: str) -> None:
    x = np.random.default_rng(1).normal(size=12)
    g = describe({"a": x}, center=center)["a"]
    expected = np.median(x) if center == "median" else st.trim_mean(x, 0.25)
    assert g.center == pytest.approx(expected)
    assert "bootstrap" in g.interval  # no t-interval for a median or an IQM
    assert iqm(x) == pytest.approx(st.trim_mean(x, 0.25))


def test_std_and_sem_spreads() -> None:
    x = np.array([1.0, 2.0, 4.0])
    sd = describe({"a": x}, spread="std")["a"]
    assert (sd.low, sd.high) == pytest.approx((x.mean() - x.std(ddof=1), x.mean() + x.std(ddof=1)))
    se = describe({"a": x}, spread="sem")["a"]
    assert se.high - se.center == pytest.approx(st.sem(x))


def test_same_seed_same_output_and_groups_independent() -> None:
    rng = np.random.default_rng(0)
    data = {"a": rng.normal(size=15), "b": rng.normal(size=15)}
    one = describe(data, seed=5)
    two = describe(data, seed=5)
    assert one == two
    assert describe(data, seed=6)["a"].low != one["a"].low
    # a group's stream depends on its own label only, not on the other groups present
    assert describe({"a": data["a"]}, seed=5)["a"] == one["a"]


def test_inputs_are_not_modified() -> None:
    x = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 9.0, 7.0, 8.0, 6.0, 0.0, 11.0])
    keep = x.copy()
    df = pd.DataFrame({"config.model": ["a"] * 11, "summary.acc": x})
    before = df.copy()
    describe({"a": x}, center="iqm")
    describe(df, by="model", metric="acc", center="median")
    np.testing.assert_array_equal(x, keep)
    pd.testing.assert_frame_equal(df, before)


def test_dataframe_groups_by_config_key() -> None:
    df = pd.DataFrame(
        {
            "config.model": ["a", "a", "a", "b", "b", "b"],
            "summary.acc": [0.1, 0.2, 0.3, 0.5, 0.6, 0.7],
        }
    )
    d = describe(df, by="model", metric="acc")
    assert [g.group for g in d] == ["a", "b"]
    assert d["b"].center == pytest.approx(0.6)
    frame = d.to_frame()
    assert list(frame["group"]) == ["a", "b"] and list(frame["n"]) == [3, 3]


def test_errors_say_what_to_do() -> None:
    with pytest.raises(UsageError, match="center must be one of mean, median, iqm"):
        describe({"a": [1.0, 2.0]}, center="mode")
    with pytest.raises(UsageError, match=r"NaN value\(s\).*dropna"):
        describe({"a": [1.0, float("nan")]})
    with pytest.raises(UsageError, match="t-interval is for a mean"):
        describe({"a": [1.0, 2.0, 3.0]}, center="median", interval="t")
    df = pd.DataFrame({"summary.acc": [1.0]})
    with pytest.raises(UsageError, match="No column 'model'"):
        describe(df, by="model", metric="acc")
