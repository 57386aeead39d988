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
last line left by a crash is skipped. A distributed run's points are rank 0's unless
``rank=`` names another rank, or ``"all"`` (then a ``rank`` column says whose each point is).

One value per seed: statistics over runs assume that each row is a new seed. ``load_runs`` (and
everything built on it: reports, cards, the checklist) therefore leaves out reproductions (runs
whose run.json has ``reproduction_of``) unless ``reproductions=True``, and keeps one run per
(config, seed): the latest completed run of each config hash and seed (:func:`one_per_seed`),
with a :class:`SeedWarning` naming the seeds that several runs shared.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util.deps import require
from .._util.warnings import warn
from ..config import config_hash, flatten
from .defects import warn_known_defects
from .metrics import Rank, decode_value, read_metrics
from .record import RunRecord
from .store import DamagedRun, Store, StoreLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BASE_COLUMNS",
    "SeedSelection",
    "SeedWarning",
    "flatten",
    "load_metrics",
    "load_runs",
    "one_per_seed",
    "run_config_hash",
    "runs_frame",
    "varying_config_keys",
    "varying_keys",
]

BASE_COLUMNS = ("id", "experiment", "name", "status", "seed", "started", "ended", "duration", "dir")
# Statuses a finished, usable run has; everything else is excluded from statistics by default.
DEFAULT_STATUS = ("completed",)

Where = str | Callable[[dict[str, Any]], bool] | None


class SeedWarning(UserWarning):
    """Several runs share a config and a seed: statistics count them once (the latest kept)."""


@dataclass(frozen=True)
class SeedSelection:
    """The runs statistics count (one per config and seed) and the others, each with why."""

    kept: tuple[RunRecord, ...]
    left_out: tuple[tuple[RunRecord, str], ...]
    warnings: tuple[str, ...]


def run_config_hash(record: RunRecord) -> str:
    """The config a run ran with: its recorded config hash, else the hash of its config."""
    recorded = record.meta.get("config_hash")
    return str(recorded) if recorded else config_hash(record.config or {})


def _recency(record: RunRecord) -> tuple[bool, float, float, str]:
    """Sort key: completed runs first, then the latest to end (or start)."""
    return (
        record.status == "completed",
        float(record.ended if record.ended is not None else -math.inf),
        float(record.started if record.started is not None else -math.inf),
        record.id,
    )


def one_per_seed(records: Sequence[RunRecord], *, reproductions: bool = False) -> SeedSelection:
    """One run per (config hash, seed): the latest completed one; reproductions left out.

    Runs without a recorded seed are all kept (nothing says they repeat one another). The
    warnings say how many runs shared which seeds, so that a report never counts a repeated
    seed as a new one.
    """
    left_out: list[tuple[RunRecord, str]] = []
    candidates: list[RunRecord] = []
    for r in records:
        original = r.meta.get("reproduction_of")
        if original and not reproductions:
            left_out.append((r, f"reproduction of {original}"))
        else:
            candidates.append(r)
    groups: dict[tuple[str, int], list[RunRecord]] = {}
    for r in candidates:
        if r.seed is not None:
            groups.setdefault((run_config_hash(r), int(r.seed)), []).append(r)
    chosen = {id(max(g, key=_recency)) for g in groups.values()}
    shared: dict[str, list[tuple[int, int]]] = {}
    for (config, seed), group in groups.items():
        if len(group) > 1:
            keep = max(group, key=_recency)
            shared.setdefault(config, []).append((seed, len(group)))
            for r in group:
                if r is not keep:
                    left_out.append((r, f"same config and seed {seed} as {keep.id} (counted once)"))
    kept = tuple(r for r in candidates if r.seed is None or id(r) in chosen)
    messages = []
    for config, seeds in shared.items():
        runs = sum(n for _, n in seeds)
        listed = ", ".join(f"{seed} ({n} runs)" for seed, n in sorted(seeds))
        messages.append(
            f"{runs} runs of config {config[:12]} share {len(seeds)} seed(s): {listed}; "
            f"each seed is counted once (its latest completed run), {runs - len(seeds)} run(s) "
            "left out."
        )
    return SeedSelection(kept, tuple(left_out), tuple(messages))


_one_per_seed = one_per_seed  # load_runs' parameter of the same name hides the function


def varying_config_keys(configs: Iterable[dict[str, Any]]) -> list[str]:
    """The flattened config keys (seed keys left out) whose values differ between ``configs``:
    the keys that tell one group of runs from another (``report`` groups by them)."""
    return varying_keys([flatten(c or {}) for c in configs])


def varying_keys(flat: list[dict[str, Any]]) -> list[str]:
    """:func:`varying_config_keys` of configs already flattened (a DataFrame's config columns)."""
    import json

    keys = sorted(set().union(*flat)) if flat else []
    return [
        k
        for k in keys
        if "seed" not in k.lower()
        and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1
    ]


def _select(
    *,
    experiment: str | Iterable[str] | None,
    where: Where,
    store: StoreLike,
    status: str | Iterable[str] | None,
) -> list[RunRecord]:
    """The runs to load; each damaged run skipped is named in a RuntimeWarning."""
    skipped: list[DamagedRun] = []
    records = Store.coerce(store).select(
        experiment=experiment, status=status, where=where, damaged=skipped
    )
    for damaged in skipped:
        warn(f"{damaged.problem} Skipped.", RuntimeWarning)
    return records


def load_runs(
    *,
    experiment: str | Iterable[str] | None = None,
    where: Where = None,
    store: StoreLike = None,
    status: str | Iterable[str] | None = DEFAULT_STATUS,
    reproductions: bool = False,
    one_per_seed: bool = True,
) -> pd.DataFrame:
    """One row per run: run attributes, ``config.*`` and ``summary.*`` columns.

    ``status`` defaults to completed runs only; pass ``status=None`` for every run (running,
    failed, crashed and interrupted included). ``where`` is a ``--where`` expression
    (``"config.optim.lr < 0.1 and summary.test_acc > 0.8"``) or a callable taking
    ``RunRecord.as_dict()``. ``store`` is a :class:`Store` or a store directory; default: the
    store of the working directory.

    Each row is one seed: reproductions (run.json ``reproduction_of``) are left out unless
    ``reproductions=True``, and of several runs with the same config hash and seed only the latest
    completed one is kept, with a :class:`SeedWarning`; ``one_per_seed=False`` keeps every run.
    A run whose files show a known defect of the version that recorded it (a resumed 0.1.0 run's
    stale summary, ...) is kept, with a :class:`~replicator.store.defects.KnownDefectWarning`.
    """
    require("pandas", purpose="Loading runs as a DataFrame")
    records = _select(experiment=experiment, where=where, store=store, status=status)
    if one_per_seed:
        selection = _one_per_seed(records, reproductions=reproductions)
        for message in selection.warnings:
            warnings.warn(message, SeedWarning, stacklevel=2)
        records = list(selection.kept)
    elif not reproductions:
        records = [r for r in records if not r.meta.get("reproduction_of")]
    warn_known_defects(records)
    return runs_frame(records)


def runs_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """The :func:`load_runs` DataFrame of exactly these records (no selection)."""
    pd = require("pandas", purpose="Loading runs as a DataFrame")

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
    path: Path, *, keys: Iterable[str] | None, superseded: bool, rank: Rank = 0
) -> list[tuple[int, str, float, float, int]]:
    """(step, key, value, time) of one metrics.jsonl, read by :func:`read_metrics` (torn lines
    skipped; lines a resumed run superseded dropped unless ``superseded``)."""
    wanted = set(keys) if keys is not None else None
    out: list[tuple[int, str, float, float, int]] = []
    for entry in read_metrics(path, include_superseded=superseded, rank=rank):
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
                    int(entry.get("rank", rank if isinstance(rank, int) else 0)),
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
    rank: Rank = 0,
) -> pd.DataFrame:
    """Tidy per-step metrics: columns ``run, step, key, value, time``, one row per logged point.

    Select runs as in :func:`load_runs`, or pass ``runs`` (a DataFrame from ``load_runs`` or run
    ids/directories). ``keys`` limits the metric names read. ``superseded=True`` keeps the
    points that a resumed run logged again (worked out from the resume markers when reading).
    In a distributed run the points are rank 0's; ``rank=r`` reads rank ``r``'s and
    ``rank="all"`` every rank's, with a ``rank`` column after ``time``.
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
    ranks: list[int] = []
    for run_id, run_dir in dirs:
        points = _points(run_dir / "metrics.jsonl", keys=keys, superseded=superseded, rank=rank)
        run_col.extend([run_id] * len(points))
        for step, key, value, stamp, which in points:
            steps.append(step)
            names.append(key)
            values.append(value)
            times.append(stamp)
            ranks.append(which)
    columns = {
        "run": pd.Series(run_col, dtype=object),
        "step": pd.Series(steps, dtype="int64"),
        "key": pd.Series(names, dtype=object),
        "value": pd.Series(values, dtype="float64"),
        "time": pd.Series(times, dtype="float64"),
    }
    if rank == "all":
        columns["rank"] = pd.Series(ranks, dtype="int64")
    return pd.DataFrame(columns)
