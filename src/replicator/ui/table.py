"""The runs of the store, kept in the server's memory and brought up to date on each request.

Listing 10,000 runs through :meth:`Store.records` reads its SQLite index and builds every
record again on each call; the UI asks on every page load and every filter, so it keeps what it
read: each run's record, its ``--where`` view, its flattened config and the JSON of its row,
reused while the run is unchanged. A request costs one ``stat`` per run, of its directory: the
recorder replaces run.json and summary.json atomically (a new file renamed into place), which
changes the directory's mtime. A run still 'running' or damaged is also checked by the size and
mtime of those two files (the index's rule), so that a file edited in place is seen too, and a
running run has its status made current (crash detection) on every request. Only new or
changed runs are read, with the store's own readers (:func:`read_run_files`,
:func:`record_of`). Nothing is written: the UI does not touch the store's index.
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import config_hash, flatten
from ..errors import DamagedRunError, QueryError, RunNotFoundError, StoreError
from ..store import RunRecord, Store
from ..store.frames import varying_keys
from ..store.query import compile_where
from ..store.record import read_run_files, record_of

__all__ = [
    "Entry",
    "RunsCache",
    "config_group",
    "config_keys_of",
    "experiment_params",
    "numbers",
    "runs_csv",
    "runs_json",
    "select",
]


@dataclass
class Entry:
    """One run directory as the UI last read it."""

    name: str
    stamp: str
    meta: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    record: RunRecord | None = None
    problem: str | None = None
    flat_config: dict[str, Any] = field(default_factory=dict)
    group: str | None = None
    view: dict[str, Any] = field(default_factory=dict)
    numbers: dict[str, float | int] = field(default_factory=dict)
    row_json: dict[tuple[str, ...], str] = field(default_factory=dict)
    live: bool = False
    """Whether the run's status can change without its files changing (crash detection)."""


def _stamp(run_dir: str) -> str:
    """Change marker of a run's listed files: mtime and size of run.json and summary.json."""
    parts = []
    for name in ("run.json", "summary.json"):
        try:
            st = os.stat(os.path.join(run_dir, name))
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append("-")
    return "|".join(parts)


class RunsCache:
    """Every run directory of one store, read once and re-read when it changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def entries(self) -> list[Entry]:
        """Every run directory, oldest first (by id), up to date."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> list[Entry]:
        runs_dir = self.store.runs_dir
        try:
            listing = sorted(
                (e.name, e.path, e.is_symlink())
                for e in os.scandir(runs_dir)
                if not e.name.startswith(".") and e.is_dir()
            )
        except FileNotFoundError:
            listing = []
        inside = runs_dir.resolve()
        stale_after = self.store.heartbeat_stale_s
        fresh: dict[str, Entry] = {}
        for name, path, is_link in listing:
            if is_link and Path(path).resolve().parent != inside:
                continue  # a link out of the store is not served (security.run_dir_of)
            entry = self._entries.get(name)
            try:
                stamp = str(os.stat(path).st_mtime_ns)
            except OSError:
                continue  # removed since the listing
            if entry is not None and (entry.live or entry.record is None):
                stamp += "|" + _stamp(path)
            if entry is None or entry.stamp != stamp:
                entry = _read(Path(path), name, stamp, stale_after)
            elif entry.live:
                _make_current(entry, Path(path), stale_after)
            fresh[name] = entry
        self._entries = fresh
        return list(fresh.values())


def _read(run_dir: Path, name: str, stamp: str, stale_after: float) -> Entry:
    entry = Entry(name=name, stamp=stamp.split("|", 1)[0])
    try:
        entry.meta, entry.summary = read_run_files(run_dir)
    except StoreError as exc:
        entry.problem = str(exc)
    else:
        entry.live = entry.meta.get("status") == "running"
        _make_current(entry, run_dir, stale_after)
    if entry.live or entry.record is None:
        entry.stamp += "|" + _stamp(str(run_dir))
    return entry


def _make_current(entry: Entry, run_dir: Path, stale_after: float) -> None:
    """Build the entry's record (the status made current) and what derives from it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            record = record_of(run_dir, entry.meta, entry.summary, stale_after=stale_after)
        except DamagedRunError as exc:
            entry.problem = str(exc)
            entry.record = None
            return
    previous = entry.record
    entry.record = record
    entry.problem = None
    entry.view = record.as_dict()
    entry.row_json = {}
    if previous is None or previous.config is not record.config:
        entry.flat_config = flatten(record.config or {})
        entry.group = config_group(entry.flat_config)
        entry.numbers = numbers(record.summary)


def config_group(flat_config: dict[str, Any]) -> str:
    """The config a run ran with, seeds left out: the runs of one group differ by seed only.

    Seed keys are those :func:`~replicator.store.frames.varying_config_keys` leaves out (a name
    holding "seed"); the recorded ``config_hash`` covers the seed too, so it is not used here."""
    kept = {k: v for k, v in flat_config.items() if "seed" not in k.lower()}
    return config_hash(kept)[:12]


def numbers(summary: dict[str, Any]) -> dict[str, float | int]:
    """The summary's numeric metrics, nested ones flattened; non-finite values left out (JSON
    has no NaN)."""
    out: dict[str, float | int] = {}
    for key, value in flatten(summary).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        out[key] = value
    return out


def dumps(data: Any) -> str:
    """Compact JSON, non-finite numbers refused (the answer must be strict JSON)."""
    return json.dumps(data, default=str, allow_nan=False, separators=(",", ":"))


# ---------------------------------------------------------------------------- the runs table


def select(
    cache: RunsCache, *, where: str | None = None, experiment: str | None = None
) -> tuple[list[Entry], list[Entry]]:
    """(the readable runs matching ``where`` and ``experiment``, the damaged runs), oldest
    first. ``where`` is a ``--where`` expression (QueryError when bad); a damaged run has no
    fields to match, so damaged runs are listed only without ``where``."""
    predicate = compile_where(where) if where else None
    entries = cache.entries()
    readable = [e for e in entries if e.record is not None]
    damaged = [e for e in entries if e.record is None]
    if experiment:
        readable = [e for e in readable if e.view["experiment"] == experiment]
        damaged = [e for e in damaged if e.meta.get("experiment") in (None, experiment)]
    if predicate is None:
        return readable, damaged
    kept = []
    for entry in readable:
        try:
            keep = predicate(entry.view)
        except Exception as exc:
            raise QueryError(f"--where {where!r} failed on run {entry.name}: {exc}") from exc
        if keep:
            kept.append(entry)
    return kept, []


def config_keys_of(entries: list[Entry]) -> list[str]:
    """:func:`~replicator.store.frames.varying_config_keys` of the entries' configs, computed
    over one config per group (the same keys: runs of one group differ by seed keys only, which
    varying keys leave out)."""
    distinct: dict[str | None, dict[str, Any]] = {}
    for entry in entries:
        distinct.setdefault(entry.group, entry.flat_config)
    return varying_keys(list(distinct.values()))


def row(entry: Entry, config_keys: tuple[str, ...]) -> dict[str, Any]:
    """One row of the runs table (see docs/ui.md)."""
    if entry.record is None:
        experiment = entry.meta.get("experiment")
        return {
            "id": entry.name,
            "experiment": experiment if isinstance(experiment, str) else None,
            "name": None,
            "status": "damaged",
            "seed": None,
            "started": None,
            "duration": None,
            "config": {},
            "summary": {},
            "group": None,
            "reproduction_of": None,
            "damaged": entry.problem,
        }
    record = entry.record
    duration = record.duration
    return {
        "id": record.id,
        "experiment": record.experiment,
        "name": record.name,
        "status": record.status,
        "seed": record.seed,
        "started": record.started,
        "duration": duration if duration is not None and math.isfinite(duration) else None,
        "config": {k: _jsonable(entry.flat_config.get(k)) for k in config_keys},
        "summary": entry.numbers,
        "group": entry.group,
        "reproduction_of": record.meta.get("reproduction_of"),
        "damaged": "; ".join(record.meta["damaged"]) if record.meta.get("damaged") else None,
    }


def _row_json(entry: Entry, config_keys: tuple[str, ...]) -> str:
    """The row's JSON, kept while the run and the columns are the same (a running run's
    duration changes: never kept)."""
    text = entry.row_json.get(config_keys)
    if text is None:
        text = dumps(row(entry, config_keys))
        if not entry.live:
            entry.row_json = {config_keys: text}
    return text


def runs_json(cache: RunsCache, *, where: str | None = None, experiment: str | None = None) -> str:
    """``/api/runs`` as JSON text: the rows, the config keys that vary between the runs, the
    summary metrics they have."""
    readable, damaged = select(cache, where=where, experiment=experiment)
    keys = tuple(config_keys_of(readable))
    summary_keys: set[str] = set()
    for entry in readable:
        summary_keys.update(entry.numbers)
    rows = [_row_json(e, keys) for e in (*readable, *damaged)]
    return (
        '{"runs":['
        + ",".join(rows)
        + f'],"config_keys":{dumps(list(keys))},"summary_keys":{dumps(sorted(summary_keys))},'
        + f'"total":{len(rows)},"where":{dumps(where or None)}}}'
    )


def runs_csv(cache: RunsCache, *, where: str | None = None, experiment: str | None = None) -> str:
    """The runs table as CSV: the row fields, then every ``config.*`` and ``summary.*`` column."""
    import csv
    import io

    readable, damaged = select(cache, where=where, experiment=experiment)
    config_keys = sorted(set().union(*(e.flat_config for e in readable))) if readable else []
    summary_keys = sorted(set().union(*(e.numbers for e in readable))) if readable else []
    base = ["id", "experiment", "name", "status", "seed", "started", "duration", "group", "damaged"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [*base, *(f"config.{k}" for k in config_keys), *(f"summary.{k}" for k in summary_keys)]
    )
    for entry in (*readable, *damaged):
        data = row(entry, tuple(config_keys))
        writer.writerow(
            [
                *(_cell(data.get(k)) for k in base),
                *(_cell(data["config"].get(k)) for k in config_keys),
                *(_cell(data["summary"].get(k)) for k in summary_keys),
            ]
        )
    return buf.getvalue()


def experiment_params(cache: RunsCache, name: str) -> dict[str, Any]:
    """``/api/experiments/{name}/params``: each run's config and summary metrics, for the
    metric-versus-hyperparameter scatter and the parallel coordinates."""
    readable, _ = select(cache, experiment=name)
    if not readable:
        known = sorted({e.view["experiment"] for e in cache.entries() if e.record is not None})
        raise RunNotFoundError(
            f"No runs of experiment '{name[:60]}' in {cache.store.root}; experiments: "
            f"{', '.join(known[:20]) or '(none)'}."
        )
    keys = config_keys_of(readable) or sorted(
        {k for e in readable for k in e.flat_config if "seed" not in k.lower()}
    )
    summary_keys: set[str] = set()
    rows = []
    for entry in readable:
        assert entry.record is not None
        summary_keys.update(entry.numbers)
        rows.append(
            {
                "id": entry.record.id,
                "name": entry.record.name,
                "status": entry.record.status,
                "seed": entry.record.seed,
                "group": entry.group,
                "config": {k: _jsonable(entry.flat_config.get(k)) for k in keys},
                "summary": entry.numbers,
            }
        )
    return {
        "experiment": name,
        "rows": rows,
        "config_keys": keys,
        "summary_keys": sorted(summary_keys),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return json.loads(json.dumps(value, default=str))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
