"""Runs as pandas DataFrames: one row per run (``load_runs``) and tidy metric histories (``load_metrics``).

``load_runs`` reads the store through :meth:`Store.records` (the SQLite index keeps this fast) and
returns one row per run with these columns, in this order:

``id, experiment, name, status, seed, started, ended, duration, dir``
    ``started``/``ended`` are timezone-aware UTC timestamps, ``duration`` is in seconds.
``config.<dotted.key>``
    the resolved config, flattened (``{"optim": {"lr": 0.1}}`` -> ``config.optim.lr``); lists stay
    Python lists in one cell.
``summary.<key>``
    the final metrics from ``summary.json``; nested dicts are flattened the same way.

Metric columns carry the ``summary.`` prefix so that a metric can never collide with a config key
or a run attribute, and so that column names read like ``--where`` expressions
(``summary.test_acc > 0.9``). The statistics and report functions accept a bare metric name
(``test_acc``) and look up ``summary.test_acc``.

``load_metrics`` reads each run's ``metrics.jsonl`` with :func:`replicator.store.metrics.read_metrics`
into a long DataFrame ``run, step, key, value, time`` (non-finite values as floats). Points that a
resumed run logged again supersede the earlier ones: nothing in the file marks them, the reader
works it out from the resume markers, and drops the superseded points unless asked for. A torn
last line left by a crash is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util.deps import require
from ..config import flatten
from .metrics import decode_value, read_metrics
from .record import RunRecord
from .store import Store, StoreLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BASE_COLUMNS",
    "flatten",
    "load_metrics",
    "load_runs",
]

BASE_COLUMNS = ("id", "experiment", "name", "status", "seed", "started", "ended", "duration", "dir")
# Statuses a finished, usable run has; everything else is excluded from statistics by default.
DEFAULT_STATUS = ("completed",)

Where = str | Callable[[dict[str, Any]], bool] | None


def _select(
    *,
    experiment: str | Iterable[str] | None,
    where: Where,
    store: StoreLike,
    status: str | Iterable[str] | None,
) -> list[RunRecord]:
    return Store.coerce(store).select(experiment=experiment, status=status, where=where)


def load_runs(
    *,
    experiment: str | Iterable[str] | None = None,
    where: Where = None,
    store: StoreLike = None,
    status: str | Iterable[str] | None = DEFAULT_STATUS,
) -> pd.DataFrame:
    """One row per run: run attributes, ``config.*`` and ``summary.*`` columns.

    ``status`` defaults to completed runs only; pass ``status=None`` for every run (running,
    failed, crashed and interrupted included). ``where`` is a ``--where`` expression
    (``"config.optim.lr < 0.1 and summary.test_acc > 0.8"``) or a callable taking
    ``RunRecord.as_dict()``. ``store`` is a :class:`Store` or a store directory; default: the
    store of the working directory.
    """
    pd = require("pandas", purpose="Loading runs as a DataFrame")

    records = _select(experiment=experiment, where=where, store=store, status=status)
    rows: list[dict[str, Any]] = []
    for r in records:
        row: dict[str, Any] = {
            "id": r.id,
            "experiment": r.experiment,
            "name": r.name,
            "status": r.status,
            "seed": r.seed,
            "started": r.started,
            "ended": r.ended,
            "duration": r.duration,
            "dir": str(r.dir),
        }
        if r.config:
            row.update(flatten(r.config, "config."))
        if r.summary:
            row.update(flatten(r.summary, "summary."))
        rows.append(row)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in BASE_COLUMNS})
    df = pd.DataFrame.from_records(rows)
    for col in ("started", "ended"):
        df[col] = pd.to_datetime(pd.to_numeric(df[col], errors="coerce"), unit="s", utc=True)
    df["seed"] = df["seed"].astype("Int64")
    # Stable column order: attributes, then config.*, then summary.* (each sorted).
    config_cols = sorted(c for c in df.columns if c.startswith("config."))
    summary_cols = sorted(c for c in df.columns if c.startswith("summary."))
    df = df[[*BASE_COLUMNS, *config_cols, *summary_cols]]
    return df


def _number(raw: Any) -> float:
    """A value or time of a metrics line as a float; NaN when it is text or missing."""
    raw = decode_value(raw)
    if isinstance(raw, str) or raw is None:
        return math.nan
    return float(raw)


def _points(
    path: Path, *, keys: Iterable[str] | None, superseded: bool
) -> list[tuple[int, str, float, float]]:
    """(step, key, value, time) of one metrics.jsonl, read by :func:`read_metrics` (torn lines
    skipped; lines a resumed run superseded dropped unless ``superseded``)."""
    wanted = set(keys) if keys is not None else None
    out: list[tuple[int, str, float, float]] = []
    for entry in read_metrics(path, include_superseded=superseded):
        key = entry["key"]
        if wanted is not None and key not in wanted:
            continue
        try:
            out.append(
                (
                    int(entry.get("step", 0)),
                    key,
                    _number(entry.get("value")),
                    _number(entry.get("time")),
                )
            )
        except (TypeError, ValueError):
            continue
    return out


def load_metrics(
    *,
    experiment: str | Iterable[str] | None = None,
    where: Where = None,
    store: StoreLike = None,
    status: str | Iterable[str] | None = DEFAULT_STATUS,
    runs: pd.DataFrame | Iterable[str] | None = None,
    keys: str | Iterable[str] | None = None,
    superseded: bool = False,
) -> pd.DataFrame:
    """Tidy per-step metrics: columns ``run, step, key, value, time``, one row per logged point.

    Select runs as in :func:`load_runs`, or pass ``runs`` (a DataFrame from ``load_runs`` or run
    ids/directories). ``keys`` limits the metric names read. ``superseded=True`` keeps the
    points that a resumed run logged again (worked out from the resume markers when reading).
    """
    pd = require("pandas", purpose="Loading runs as a DataFrame")

    if isinstance(keys, str):
        keys = [keys]
    dirs: list[tuple[str, Path]] = []
    if runs is not None:
        if isinstance(runs, pd.DataFrame):
            dirs = [(str(i), Path(d)) for i, d in zip(runs["id"], runs["dir"])]
        else:
            opened = Store.coerce(store)
            for ref in runs:
                path = opened.resolve(str(ref))
                dirs.append((path.name, path))
    else:
        records = _select(experiment=experiment, where=where, store=store, status=status)
        dirs = [(r.id, r.dir) for r in records]
    run_col: list[str] = []
    steps: list[int] = []
    names: list[str] = []
    values: list[float] = []
    times: list[float] = []
    for run_id, run_dir in dirs:
        points = _points(run_dir / "metrics.jsonl", keys=keys, superseded=superseded)
        run_col.extend([run_id] * len(points))
        for step, key, value, stamp in points:
            steps.append(step)
            names.append(key)
            values.append(value)
            times.append(stamp)
    return pd.DataFrame(
        {
            "run": pd.Series(run_col, dtype=object),
            "step": pd.Series(steps, dtype="int64"),
            "key": pd.Series(names, dtype=object),
            "value": pd.Series(values, dtype="float64"),
            "time": pd.Series(times, dtype="float64"),
        }
    )
