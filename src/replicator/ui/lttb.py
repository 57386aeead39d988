"""Largest-Triangle-Three-Buckets downsampling (Steinarsson, 2013), keeping extremes.

A chart of a million points is drawn from a few thousand: LTTB keeps the points that carry the
curve's shape, and :func:`downsample` adds back the series' lowest and highest points, so that a
spike or a divergence is never smoothed away.

LTTB chooses one point per bucket, each choice depending on the previous one, so it is a loop
over the output points. Over a long series the loop would run over every point; as in MinMaxLTTB
(Van Der Donckt et al., 2023) the series is first reduced with numpy to the lowest and highest
point of each of ``4 x threshold`` equal slices (which keeps every point LTTB is likely to pick),
and LTTB runs over those. A million points take a few milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["downsample", "lttb_indices", "minmax_indices"]

PRESELECT = 4
"""Slices per output point in the min-max reduction before LTTB (MinMaxLTTB's ratio)."""


def minmax_indices(y: np.ndarray, slices: int) -> np.ndarray:
    """The indices of the lowest and the highest point of each of ``slices`` equal slices of
    ``y``, the first and the last point included, in order."""
    import numpy as np

    n = len(y)
    width = n // slices
    if width < 2:
        return np.arange(n)
    body = y[: slices * width].reshape(slices, width)
    starts = np.arange(slices) * width
    found = [starts + body.argmin(axis=1), starts + body.argmax(axis=1), np.array([0, n - 1])]
    rest = y[slices * width :]
    if len(rest):
        found.append(slices * width + np.array([rest.argmin(), rest.argmax()]))
    return np.unique(np.concatenate(found))


def lttb_indices(x: np.ndarray, y: np.ndarray, threshold: int) -> np.ndarray:
    """The indices of the ``threshold`` points LTTB keeps of (x, y), first and last included."""
    import numpy as np

    n = len(x)
    if threshold >= n:
        return np.arange(n)
    if threshold < 3:
        return np.array([0, n - 1][:threshold], dtype=np.int64)
    # threshold - 2 buckets over the points between the first and the last
    edges = np.linspace(1, n - 1, threshold - 1).astype(np.int64)
    counts = np.diff(edges)
    # each bucket's mean point, all at once; after the last bucket comes the last point
    mean_x = np.append(np.add.reduceat(x[1 : n - 1], edges[:-1] - 1) / counts, x[n - 1]).tolist()
    mean_y = np.append(np.add.reduceat(y[1 : n - 1], edges[:-1] - 1) / counts, y[n - 1]).tolist()
    xs, ys, bounds = x.tolist(), y.tolist(), edges.tolist()
    out = [0]
    ax, ay = xs[0], ys[0]
    for i in range(threshold - 2):
        cx, cy = mean_x[i + 1], mean_y[i + 1]
        dx, dy = ax - cx, cy - ay
        best, chosen = -1.0, bounds[i]
        # twice the area of the triangle (a, b, the next bucket's mean) for each b of the bucket
        for j in range(bounds[i], bounds[i + 1]):
            area = abs(dx * (ys[j] - ay) - (ax - xs[j]) * dy)
            if area > best:
                best, chosen = area, j
        out.append(chosen)
        ax, ay = xs[chosen], ys[chosen]
    out.append(n - 1)
    return np.asarray(out, dtype=np.int64)


def downsample(x: np.ndarray, y: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """At most ``points`` (at least 4) points of (x, y): LTTB's choice plus the lowest and the
    highest point. Returns (x, y, whether any point was left out)."""
    import numpy as np

    n = len(x)
    if n <= points:
        return x, y, False
    points = max(points, 4)
    keep = np.arange(n)
    if n > 2 * PRESELECT * points:
        keep = minmax_indices(y, PRESELECT * points)
    chosen = keep[lttb_indices(x[keep], y[keep], points - 2)]
    chosen = np.union1d(chosen, [int(np.argmin(y)), int(np.argmax(y))])
    return x[chosen], y[chosen], True
