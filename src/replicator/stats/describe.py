"""``describe``: centre and spread of a metric per group, with the interval named.

With fewer than :data:`T_INTERVAL_BELOW` values a bootstrap interval under-covers (about 75% for a
nominal 95% at n=3), so the default ``interval="auto"`` uses a t-interval for a mean below that and
a percentile bootstrap at or above it. Medians and IQMs have no t-interval; they always get a
bootstrap interval, and the method text warns when n is small.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ._common import fmt, groups_of, level_text, rng_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["Description", "GroupSummary", "centre", "describe", "iqm"]

T_INTERVAL_BELOW = 10
CENTRES = ("mean", "median", "iqm")
SPREADS = ("std", "sem", "ci")
INTERVALS = ("auto", "t", "bootstrap")


def iqm(values: Any, axis: int = -1) -> Any:
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean(x, 0.25)``)."""
    import numpy as np

    arr = np.sort(np.asarray(values, dtype=float), axis=axis)
    n = arr.shape[axis]
    cut = int(0.25 * n)
    return np.take(arr, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def centre(values: Any, kind: str, axis: int = -1) -> Any:
    import numpy as np

    if kind == "mean":
        return np.mean(values, axis=axis)
    if kind == "median":
        return np.median(values, axis=axis)
    if kind == "iqm":
        return iqm(values, axis=axis)
    raise UsageError(f"center must be one of {', '.join(CENTRES)}; got {kind!r}.")


@dataclass(frozen=True)
class GroupSummary:
    """One group: n, the centre, the sample SD and SE, and the interval ``[low, high]``."""

    group: str
    n: int
    center: float
    std: float
    sem: float
    low: float
    high: float
    interval: str

    def text(self, digits: int = 3) -> str:
        return f"{fmt(self.center, digits)} [{fmt(self.low, digits)}, {fmt(self.high, digits)}]"


@dataclass(frozen=True)
class Description:
    """The result of :func:`describe`; ``method`` says in words what was computed."""

    metric: str
    by: str | None
    center: str
    spread: str
    level: float
    groups: tuple[GroupSummary, ...]
    method: str
    seed: int | None

    def __iter__(self) -> Iterator[GroupSummary]:
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, group: str) -> GroupSummary:
        for g in self.groups:
            if g.group == str(group):
                return g
        raise KeyError(group)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "group": g.group,
                    "n": g.n,
                    self.center: g.center,
                    "std": g.std,
                    "sem": g.sem,
                    "low": g.low,
                    "high": g.high,
                    "interval": g.interval,
                }
                for g in self.groups
            ]
        )


def _bootstrap(
    x: np.ndarray, kind: str, *, reps: int, level: float, rng: Any
) -> tuple[float, float]:
    import numpy as np

    stats = np.empty(reps)
    chunk = max(1, 2_000_000 // max(1, x.size))  # bound memory at ~16 MB per chunk
    for start in range(0, reps, chunk):
        stop = min(reps, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        stats[start:stop] = centre(x[idx], kind, axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


@dataclass(frozen=True)
class _Method:
    """How :func:`describe` summarises every group (its options, checked)."""

    center: str
    spread: str
    level: float
    interval: str
    reps: int
    seed: int | None


def _summarise(x: np.ndarray, label: str, method: _Method) -> GroupSummary:
    """Summarise one sample (see :func:`describe`)."""
    import numpy as np
    from scipy import stats as st

    n = int(x.size)
    c = float(centre(x, method.center))
    sd = float(np.std(x, ddof=1)) if n > 1 else math.nan
    se = sd / math.sqrt(n) if n > 1 else math.nan
    lvl = level_text(method.level)
    if method.spread == "std":
        low, high, how = c - sd, c + sd, "± sample SD"
    elif method.spread == "sem":
        low, high, how = c - se, c + se, "± standard error"
    elif n < 2:
        low, high, how = math.nan, math.nan, "no interval (n=1)"
    else:
        kind = method.interval
        if kind == "auto":
            kind = "t" if method.center == "mean" and n < T_INTERVAL_BELOW else "bootstrap"
        if kind == "t":
            if method.center != "mean":
                raise UsageError(
                    f"A t-interval is for a mean; use interval='bootstrap' for {method.center}."
                )
            half = float(st.t.ppf(0.5 + method.level / 2, n - 1)) * se
            low, high, how = c - half, c + half, f"{lvl} t-interval"
        elif kind == "bootstrap":
            low, high = _bootstrap(
                x,
                method.center,
                reps=method.reps,
                level=method.level,
                rng=rng_for(method.seed, label),
            )
            how = f"{lvl} percentile bootstrap CI ({method.reps:,} resamples)"
        else:
            raise UsageError(
                f"interval must be one of {', '.join(INTERVALS)}; got {method.interval!r}."
            )
    return GroupSummary(label, n, c, sd, se, low, high, how)


def describe(
    data: Any,
    *,
    by: str | None = None,
    metric: str | None = None,
    center: str = "mean",
    spread: str = "ci",
    level: float = 0.95,
    interval: str = "auto",
    reps: int = 10_000,
    seed: int | None = 0,
) -> Description:
    """Centre and spread of ``metric`` per ``by`` group.

    ``data`` is a DataFrame from :func:`replicator.load_runs` (``by`` a config key such as
    ``model`` or ``config.model``; ``metric`` a summary metric), a mapping ``{group: values}``, or
    one array. ``center``: mean, median or iqm (interquartile mean). ``spread``: std (sample SD,
    ddof=1), sem, or ci (an interval at ``level``; ``interval`` auto, t or bootstrap). Bootstrap
    draws use one random stream per group derived from ``seed``; the same seed gives the same
    output.

    >>> describe({"a": [1.0, 2.0, 3.0]}).method.split(";")[0]
    'mean with 95% t-interval'
    """
    if center not in CENTRES:
        raise UsageError(f"center must be one of {', '.join(CENTRES)}; got {center!r}.")
    if spread not in SPREADS:
        raise UsageError(f"spread must be one of {', '.join(SPREADS)}; got {spread!r}.")
    if not 0 < level < 1:
        raise UsageError(f"level must be between 0 and 1 (e.g. 0.95); got {level!r}.")
    samples = groups_of(data, by=by, metric=metric)
    settings = _Method(center, spread, level, interval, reps, seed)
    rows = tuple(_summarise(x, label, settings) for label, x in samples.items())
    kinds = sorted({g.interval for g in rows})
    ns = sorted({g.n for g in rows})
    n_text = f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]}"
    name = {"mean": "mean", "median": "median", "iqm": "interquartile mean (IQM)"}[center]
    method = f"{name} with {' / '.join(kinds)}; {n_text} per group"
    if any("bootstrap" in k for k in kinds):
        method += f"; bootstrap seed {seed}"
        if ns[0] < 20:
            method += "; bootstrap intervals under-cover with fewer than ~20 values"
    return Description(
        metric=metric or "value",
        by=by,
        center=center,
        spread=spread,
        level=level,
        groups=rows,
        method=method,
        seed=seed,
    )
