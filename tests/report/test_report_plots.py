"""Bands (numpy) against scipy, and the plots written as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from replicator.errors import UsageError
from replicator.report import results_table
from replicator.report.plots import (
    curve_bands,
    figure_bytes,
    plot_intervals,
    plot_learning_curves,
    plot_performance_profile,
    save_figure,
)
from replicator.stats import performance_profile
from replicator.store.frames import load_metrics, load_runs

pytest.importorskip("matplotlib")


def test_t_bands_match_scipy_per_step_and_handle_missing_steps() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 40))
    b = curve_bands(x, band="ci")
    low, high = st.t.interval(0.95, 5, loc=x.mean(axis=0), scale=st.sem(x, axis=0))
    np.testing.assert_allclose(b.low, low)
    np.testing.assert_allclose(b.high, high)
    x[0, 30:] = np.nan  # one seed stopped early
    b = curve_bands(x, band="sd")
    assert b.n[0] == 6 and b.n[-1] == 5
    np.testing.assert_allclose(b.mean[-1], x[1:, -1].mean())
    np.testing.assert_allclose(b.high[-1] - b.mean[-1], x[1:, -1].std(ddof=1))


def test_bootstrap_bands_are_deterministic_and_cover_the_mean() -> None:
    x = np.random.default_rng(1).normal(size=(10, 50))
    keep = x.copy()
    one = curve_bands(x, band="bootstrap", seed=3, label="a")
    two = curve_bands(x, band="bootstrap", seed=3, label="a")
    np.testing.assert_array_equal(one.low, two.low)
    assert np.all(one.low <= one.mean) and np.all(one.mean <= one.high)
    np.testing.assert_array_equal(x, keep)
    with pytest.raises(UsageError, match="band must be one of ci, bootstrap, sd, sem"):
        curve_bands(x, band="iqr")


def test_plots_png_svg_and_legends(experiment_store: Path, tmp_path: Path) -> None:
    runs = load_runs(experiment="mlp")
    history = load_metrics(runs=runs)
    fig = plot_learning_curves(history, runs, key="loss", by="model")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [f"{m} (mean ± 95% t-CI, n=5)" for m in ("cnn", "linear", "mlp")]
    png = save_figure(fig, tmp_path / "curves.png")
    svg = save_figure(fig, tmp_path / "curves.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:500]
    # same figure, same SVG bytes: no dates or random ids inside
    assert figure_bytes(fig, "svg") == figure_bytes(fig, "svg")
    sd_fig = plot_learning_curves(history, runs, key="loss", by="model", band="sd")
    assert "mean ± SD" in sd_fig.axes[0].get_legend().get_texts()[0].get_text()
    table = results_table(runs, metric="test_acc", by="model")
    save_figure(plot_intervals(table), tmp_path / "intervals.png")
    prof = performance_profile({"a": np.random.default_rng(0).random((5, 3))}, reps=100)
    save_figure(plot_performance_profile(prof), tmp_path / "profile.svg")
    with pytest.raises(
        UsageError, match="No metric 'f1' in the logged history; logged keys: loss, test_acc"
    ):
        plot_learning_curves(history, runs, key="f1")
    with pytest.raises(UsageError, match=r"save plots as \.png, \.svg or \.pdf"):
        save_figure(fig, tmp_path / "x.gif")
    # keep the pictures for a look
    out = Path(__file__).resolve().parents[2] / "test-artifacts"
    out.mkdir(exist_ok=True)
    for name in ("curves.png", "intervals.png", "profile.svg"):
        (out / f"report-{name}").write_bytes((tmp_path / name).read_bytes())
