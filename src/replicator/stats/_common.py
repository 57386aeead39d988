"""Shared helpers of replicator.stats: random streams, input coercion, grouping, wording.

Random streams: every bootstrap or permutation draws from its own ``numpy.random.Generator``
built from ``SeedSequence(seed, spawn_key=(crc32(label),))``. A group's stream therefore depends
only on the seed and the group's own label, never on which other groups are present or in what
order they come, and the same seed always gives identical output.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DEFAULT_SEED = 0


def rng_for(seed: int | None, label: str) -> np.random.Generator:
    """The random stream of one group (see the module docstring)."""
    import numpy as np

    key = zlib.crc32(str(label).encode("utf-8"))
    ss = np.random.SeedSequence(DEFAULT_SEED if seed is None else seed, spawn_key=(key,))
    return np.random.Generator(np.random.PCG64(ss))


def as_sample(values: Any, *, name: str = "sample") -> np.ndarray:
    """A fresh 1-D float array (inputs are never modified); NaN rejected with a clear message."""
    import numpy as np

    arr = np.array(values, dtype=float, copy=True).ravel()
    if arr.size == 0:
        raise UsageError(f"{name} is empty: at least one value is needed.")
    if np.isnan(arr).any():
        raise UsageError(
            f"{name} holds {int(np.isnan(arr).sum())} NaN value(s) of {arr.size}; drop the runs "
            "that did not record the metric first (e.g. df.dropna(subset=[metric]))."
        )
    return arr


def column(df: pd.DataFrame, name: str, *, prefixes: tuple[str, ...]) -> str:
    """Find ``name`` as given or under one of ``prefixes`` (``config.``, ``summary.``)."""
    if name in df.columns:
        return name
    for prefix in prefixes:
        if f"{prefix}{name}" in df.columns:
            return f"{prefix}{name}"
    raise UsageError(
        f"No column '{name}' (tried {', '.join([name] + [p + name for p in prefixes])}). "
        f"Columns: {', '.join(map(str, df.columns[:30]))}{' ...' if len(df.columns) > 30 else ''}"
    )


def groups_of(
    data: Any, *, by: str | None = None, metric: str | None = None
) -> dict[str, np.ndarray]:
    """``{group label: values}`` from a DataFrame (``by``, ``metric``), a mapping or one sample."""
    if isinstance(data, Mapping):
        return {str(k): as_sample(v, name=f"group {k!r}") for k, v in data.items()}
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is part of the stats extra
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        if metric is None:
            raise UsageError("Name the metric to summarise: metric='test_acc'.")
        mcol = column(data, metric, prefixes=("summary.",))
        if by is None:
            return {metric: as_sample(data[mcol].to_numpy(), name=metric)}
        bcol = column(data, by, prefixes=("config.",))
        out: dict[str, np.ndarray] = {}
        for key, part in data.groupby(bcol, sort=True, dropna=False):
            label = str(key[0] if isinstance(key, tuple) else key)
            out[label] = as_sample(part[mcol].to_numpy(), name=f"{metric} for {by}={label}")
        return out
    return {metric or "sample": as_sample(data, name=metric or "sample")}


def fmt(x: float, digits: int = 3) -> str:
    """A number for people: fixed digits, or scientific when tiny or huge."""
    import math

    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if x != 0 and (abs(x) < 10 ** (-digits) or abs(x) >= 10**6):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def level_text(level: float) -> str:
    pct = level * 100
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 1e-9 else f"{pct:g}%"


def labels(items: Iterable[Any]) -> list[str]:
    return [str(i) for i in items]
