"""The bootstrap of aggregate() counts how often each score is drawn instead of sorting each
resample; where every resample is the original sample, its interval must collapse onto the
point estimate, ties and the IQM's cut through a group of equal scores included."""

from __future__ import annotations

import numpy as np
import pytest

from replicator.stats import AGGREGATES, aggregate


@pytest.mark.parametrize("runs", [1, 10])
def test_interval_collapses_when_every_resample_is_the_sample(runs: int) -> None:
    # Every run of a task scores the same, so resampling runs within a task changes nothing.
    # Tasks share values in groups of 5 or 6, so positions 65 and 195 of the 260 sorted scores
    # (the IQM's cut) fall inside runs of equal scores.
    per_task = np.round(np.arange(26) / 5) / 5
    scores = np.tile(per_task, (runs, 1))
    res = aggregate({"flat": scores, "shifted": scores + 0.25}, reps=3_000, seed=3)
    for method in ("flat", "shifted"):
        for name in AGGREGATES:
            est = res.estimates[method][name]
            assert est.low == pytest.approx(est.value, rel=1e-12, abs=1e-12), (method, name)
            assert est.high == pytest.approx(est.value, rel=1e-12, abs=1e-12), (method, name)


def test_iqm_interval_tracks_the_middle_half_with_tied_scores() -> None:
    # Three score levels, heavily tied: the bootstrap IQMs must stay within the range the middle
    # half of any resample can take, and the interval must contain the point estimate.
    rng = np.random.default_rng(5)
    scores = rng.choice([0.0, 0.5, 1.0], size=(10, 26), p=[0.3, 0.4, 0.3])
    est = aggregate({"x": scores}, aggregates=("iqm",), reps=4_000, seed=1).estimates["x"]["iqm"]
    assert 0.0 <= est.low <= est.value <= est.high <= 1.0
    assert est.high - est.low > 0.01  # the runs differ, so the resamples do too
