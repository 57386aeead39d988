"""Plots: learning curves with named bands, interval plots per group, performance profiles.

matplotlib is imported only inside these functions (``pip install 'replicator[plot]'``), and
figures are built on ``matplotlib.figure.Figure`` directly, without pyplot, so no GUI backend or
global figure state is involved. :func:`curve_bands` is the numpy part, usable without matplotlib.

Band kinds: ``ci`` (t-interval per step at ``level``), ``bootstrap`` (percentile bootstrap over
seeds, the same resampled seeds at every step), ``sd`` (± sample SD) and ``sem`` (± standard
error). The legend names the band and n.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util.deps import require
from ..errors import UsageError
from ..stats._common import column, level_text, rng_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

    from ..stats.aggregate import PerformanceProfile
    from .results import ResultsTable

__all__ = [
    "BANDS",
    "Bands",
    "curve_bands",
    "figure_bytes",
    "plot_intervals",
    "plot_learning_curves",
    "plot_performance_profile",
    "save_figure",
]

BANDS = ("ci", "bootstrap", "sd", "sem")


def _figure(width: float = 6.4, height: float = 4.0) -> Figure:
    require("matplotlib", purpose="Plotting")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


@dataclass(frozen=True)
class Bands:
    """Per-step mean and band of one group; ``n`` is the number of seeds at each step."""

    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray
    label: str


def band_label(band: str, level: float, reps: int = 1000) -> str:
    lvl = level_text(level)
    return {
        "ci": f"mean ± {lvl} t-CI",
        "bootstrap": f"mean, {lvl} bootstrap CI",
        "sd": "mean ± SD",
        "sem": "mean ± SE",
    }[band]


def curve_bands(
    values: Any,
    *,
    steps: Any = None,
    band: str = "ci",
    level: float = 0.95,
    reps: int = 1000,
    seed: int | None = 0,
    label: str = "curve",
) -> Bands:
    """Mean and band over seeds for a ``(seeds, steps)`` array; NaN marks a step a seed lacks."""
    import numpy as np

    if band not in BANDS:
        raise UsageError(f"band must be one of {', '.join(BANDS)}; got {band!r}.")
    x = np.array(values, dtype=float, copy=True)
    if x.ndim != 2:
        raise UsageError(f"curve_bands needs a (seeds, steps) array; got shape {x.shape}.")
    steps_arr = np.arange(x.shape[1]) if steps is None else np.asarray(steps)
    ok = ~np.isnan(x)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(ok, x, 0).sum(axis=0) / np.maximum(n, 1), np.nan)
        dev = np.where(ok, x - mean, 0.0)
        sd = np.where(n > 1, np.sqrt((dev**2).sum(axis=0) / np.maximum(n - 1, 1)), np.nan)
        se = sd / np.sqrt(np.maximum(n, 1))
    if band == "sd":
        low, high = mean - sd, mean + sd
    elif band == "sem":
        low, high = mean - se, mean + se
    elif band == "ci":
        from scipy import stats as st

        tcrit = st.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1))
        half = np.where(n > 1, tcrit * se, np.nan)
        low, high = mean - half, mean + half
    else:
        rng = rng_for(seed, f"bands:{label}")
        idx = rng.integers(0, x.shape[0], size=(reps, x.shape[0]))
        boot = x[idx]  # (reps, seeds, steps): whole curves are resampled
        with np.errstate(invalid="ignore"):
            means = np.nanmean(boot, axis=1) if not ok.all() else boot.mean(axis=1)
        q = (1 - level) / 2
        low, high = (
            np.nanquantile(means, [q, 1 - q], axis=0)
            if not ok.all()
            else np.quantile(means, [q, 1 - q], axis=0)
        )
    return Bands(steps_arr, mean, low, high, n, label)


def _curves(
    metrics: pd.DataFrame, runs: pd.DataFrame | None, key: str, by: str | None
) -> dict[str, Any]:
    """{group: (steps, (seeds, steps) array)} from tidy metrics, grouped via the runs table."""
    part = metrics[metrics["key"] == key]
    if part.empty:
        known = sorted(metrics["key"].unique()) if not metrics.empty else []
        raise UsageError(
            f"No metric '{key}' in the logged history; logged keys: {', '.join(known) or '(none)'}."
        )
    if by is not None and runs is not None:
        bcol = column(runs, by, prefixes=("config.",))
        group_of = dict(zip(runs["id"].astype(str), runs[bcol].astype(str)))
    else:
        group_of = {}
    part = part.assign(group=part["run"].map(lambda r: group_of.get(str(r), key)))
    out = {}
    for group, g in part.groupby("group", sort=True):
        table = g.pivot_table(index="run", columns="step", values="value", aggfunc="last")
        out[str(group)] = (table.columns.to_numpy(), table.to_numpy(dtype=float))
    return out


def plot_learning_curves(
    metrics: pd.DataFrame,
    runs: pd.DataFrame | None = None,
    *,
    key: str,
    by: str | None = None,
    band: str = "ci",
    level: float = 0.95,
    reps: int = 1000,
    seed: int | None = 0,
    title: str | None = None,
) -> Figure:
    """Mean learning curve per group with a shaded band; the legend names the band and n.

    ``metrics`` is the tidy frame of :func:`replicator.load_metrics`; ``runs`` (from
    :func:`replicator.load_runs`) maps runs to their ``by`` group.
    """
    fig = _figure()
    ax = fig.add_subplot()
    for i, (group, (steps, values)) in enumerate(_curves(metrics, runs, key, by).items()):
        b = curve_bands(
            values, steps=steps, band=band, level=level, reps=reps, seed=seed, label=group
        )
        color = f"C{i % 10}"
        nmax = int(b.n.max()) if b.n.size else 0
        ax.plot(
            b.steps,
            b.mean,
            color=color,
            lw=1.5,
            label=f"{group} ({band_label(band, level)}, n={nmax})",
        )
        ax.fill_between(b.steps, b.low, b.high, color=color, alpha=0.2, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_title(title or f"{key} over seeds")
    ax.legend(fontsize="small", frameon=False)
    ax.grid(alpha=0.3)
    return fig


def plot_intervals(table: ResultsTable, *, title: str | None = None) -> Figure:
    """One row per group: the centre as a dot and the CI as a bar, best group highlighted."""
    rows = list(table.rows)
    fig = _figure(6.4, 0.5 + 0.45 * max(2, len(rows)))
    ax = fig.add_subplot()
    for i, r in enumerate(rows):
        color = "C3" if r.best else "C0"
        ax.plot([r.low, r.high], [i, i], color=color, lw=4, alpha=0.5, solid_capstyle="butt")
        ax.plot([r.center], [i], "o", color=color)
    ax.set_yticks(range(len(rows)), [f"{r.group} (n={r.n})" for r in rows])
    ax.invert_yaxis()
    centre = {"mean": "mean", "median": "median", "iqm": "IQM"}[table.center]
    ax.set_xlabel(f"{table.metric}: {centre}, {table.interval}")
    ax.set_title(title or f"{table.metric} per {(table.by or 'group').removeprefix('config.')}")
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_performance_profile(profile: PerformanceProfile, *, xlabel: str = "score τ") -> Figure:
    """Fraction of scores above τ per method, with the bootstrap band named in the legend."""
    fig = _figure()
    ax = fig.add_subplot()
    for i, (name, curve) in enumerate(profile.profiles.items()):
        color = f"C{i % 10}"
        ax.plot(
            profile.taus,
            curve,
            color=color,
            label=f"{name} ({level_text(profile.level)} bootstrap CI)",
        )
        ax.fill_between(
            profile.taus, profile.low[name], profile.high[name], color=color, alpha=0.2, lw=0
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize="small", frameon=False)
    ax.grid(alpha=0.3)
    return fig


def figure_bytes(fig: Figure, fmt: str = "png", *, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    # a fixed SVG hash salt and no date keep the output identical from one run to the next
    metadata = {"Date": None} if fmt == "svg" else {"Software": None} if fmt == "png" else None
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "replicator", "svg.fonttype": "path"}):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
    return buf.getvalue()


def data_uri(fig: Figure, fmt: str = "png") -> str:
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(figure_bytes(fig, fmt)).decode("ascii")


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 150) -> Path:
    """Write ``fig`` as PNG or SVG according to the suffix of ``path``."""
    from .._util.io import atomic_write

    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):
        raise UsageError(f"{target}: save plots as .png, .svg or .pdf.")
    return atomic_write(target, figure_bytes(fig, fmt, dpi=dpi))
