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

The first listing takes run.json and summary.json from the store's SQLite index where the
index's stamp of a run (mtime and size of both files) is still that of the files: opened
read-only (``immutable``: no lock, no journal file, nothing written), and skipped when it cannot
be read. The runs are read in a background thread from the server's start
(:func:`replicator.ui.app.create_app`); a request meanwhile waits for that read to end.

An answer of ``/api/runs`` is kept too, by its query, while no run changed (a generation number
counts the changes); a store with a running run is answered afresh each time (its duration
moves). ``--where`` runs over each run's :meth:`RunRecord.as_dict`, built on the first filter.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import stat
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
from ..store.record import SCHEMA_VERSION, read_run_files, record_of

__all__ = [
    "Answer",
    "Entry",
    "RunsCache",
    "compact",
    "config_group",
    "config_keys_of",
    "experiment_params",
    "numbers",
    "runs_answer",
    "runs_csv",
    "runs_json",
    "select",
]


@dataclass
class Answer:
    """An answer of ``/api/runs``, of the runs as they were at ``generation``."""

    generation: int
    text: str
    gzipped: bytes | None = None

    def gzip(self) -> bytes:
        """The answer's UTF-8 bytes gzipped (level 6), made once."""
        if self.gzipped is None:
            import gzip

            self.gzipped = gzip.compress(self.text.encode(), compresslevel=6, mtime=0)
        return self.gzipped


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
    _view: dict[str, Any] | None = None
    numbers: dict[str, float | int] = field(default_factory=dict)
    row_json: dict[tuple[str, ...], str] = field(default_factory=dict)
    live: bool = False
    """Whether the run's status can change without its files changing (crash detection)."""

    @property
    def view(self) -> dict[str, Any]:
        """:meth:`RunRecord.as_dict` of the run, what ``--where`` matches (built when first
        needed: most requests filter nothing)."""
        if self._view is None:
            self._view = self.record.as_dict() if self.record is not None else {}
        return self._view


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
        self.generation = 0
        """Counts the refreshes that found a run new, changed, gone or running."""
        self.answers: dict[tuple[str | None, str | None], Answer] = {}
        """``/api/runs`` answers by (where, experiment)."""
        self.answers_lock = threading.Lock()

    def entries(self) -> list[Entry]:
        """Every run directory, oldest first (by id), up to date."""
        return self.snapshot()[0]

    def snapshot(self) -> tuple[list[Entry], int]:
        """(:meth:`entries`, the generation they are of)."""
        with self._lock:
            entries = self._refresh()
            return entries, self.generation

    def _refresh(self) -> list[Entry]:
        runs_dir = self.store.runs_dir
        try:
            with os.scandir(runs_dir) as scan:
                listing = [(e.name, e.path, e.is_symlink()) for e in scan if e.name[0] != "."]
        except FileNotFoundError:
            listing = []
        listing.sort()
        inside: Path | None = None
        stale_after = self.store.heartbeat_stale_s
        known = self._entries
        indexed = _indexed(self.store) if not known else {}
        changed = False
        fresh: dict[str, Entry] = {}
        for name, path, is_link in listing:
            if is_link:
                inside = inside or runs_dir.resolve()
                if Path(path).resolve().parent != inside:
                    continue  # a link out of the store is not served (security.run_dir_of)
            try:
                st = os.stat(path)
            except OSError:
                continue  # removed since the listing
            if not stat.S_ISDIR(st.st_mode):
                continue
            stamp = str(st.st_mtime_ns)
            entry = known.get(name)
            if entry is not None and (entry.live or entry.record is None):
                stamp += "|" + _stamp(path)
            if entry is None or entry.stamp != stamp:
                entry = _read(Path(path), name, stamp, stale_after, indexed.get(name))
                changed = True
            elif entry.live:
                _make_current(entry, Path(path), stale_after)
                changed = True
            fresh[name] = entry
        self._entries = fresh
        if changed or len(fresh) != len(known):  # a run new, changed, running, or gone
            self.generation += 1
        return list(fresh.values())


def _indexed(store: Store) -> dict[str, tuple[str, str, str]]:
    """{run id: (stamp, run.json, summary.json)} of the readable runs in the store's index
    (:mod:`replicator.store.index`), opened read-only and immutable so that nothing is written
    (a row written since may be missed: its stamp then differs and the files are read); {} when
    there is no index, or it is of another schema or unreadable."""
    path = store.index_path
    if not path.is_file():
        return {}
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
        try:
            row = conn.execute("SELECT value FROM info WHERE key='schema_version'").fetchone()
            if row is None or row[0] != str(SCHEMA_VERSION):
                return {}
            rows = conn.execute(
                "SELECT id, stamp, meta, summary FROM runs WHERE error IS NULL AND meta IS NOT NULL"
            )
            return {r[0]: (r[1], r[2], r[3] or "{}") for r in rows}
        finally:
            conn.close()
    except (sqlite3.Error, ValueError):
        return {}


def _from_index(
    run_dir: Path, hit: tuple[str, str, str] | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """run.json and summary.json as the index holds them, if the files did not change since."""
    if hit is None or hit[0] != _stamp(str(run_dir)):
        return None
    try:
        meta, summary = json.loads(hit[1]), json.loads(hit[2])
    except (ValueError, RecursionError):
        return None
    if not isinstance(meta, dict):
        return None
    return meta, summary if isinstance(summary, dict) else {}


def _read(
    run_dir: Path,
    name: str,
    stamp: str,
    stale_after: float,
    indexed: tuple[str, str, str] | None = None,
) -> Entry:
    entry = Entry(name=name, stamp=stamp.split("|", 1)[0])
    try:
        entry.meta, entry.summary = _from_index(run_dir, indexed) or read_run_files(run_dir)
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
    entry._view = None
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
    cache: RunsCache,
    *,
    where: str | None = None,
    experiment: str | None = None,
    entries: list[Entry] | None = None,
) -> tuple[list[Entry], list[Entry]]:
    """(the readable runs matching ``where`` and ``experiment``, the damaged runs), oldest
    first. ``where`` is a ``--where`` expression (QueryError when bad); a damaged run has no
    fields to match, so damaged runs are listed only without ``where``. ``entries``: the
    cache's entries when already taken."""
    predicate = compile_where(where) if where else None
    if entries is None:
        entries = cache.entries()
    readable = [e for e in entries if e.record is not None]
    damaged = [e for e in entries if e.record is None]
    if experiment:
        readable = [e for e in readable if e.record and e.record.experiment == experiment]
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


def compact(data: dict[str, Any]) -> dict[str, Any]:
    """A row as ``/api/runs`` sends it: the fields (and config values) that are null, and an
    empty config or summary, left out (read a missing field as null): a third less to send and
    parse for 10,000 runs."""
    out = {}
    for key, value in data.items():
        if key == "config" and value:
            value = {k: v for k, v in value.items() if v is not None}
        if value is not None and value != {}:
            out[key] = value
    return out


def _row_json(entry: Entry, config_keys: tuple[str, ...]) -> str:
    """The row's JSON (:func:`compact`), kept while the run and the columns are the same (a
    running run's duration changes: never kept)."""
    text = entry.row_json.get(config_keys)
    if text is None:
        text = dumps(compact(row(entry, config_keys)))
        if not entry.live:
            entry.row_json = {config_keys: text}
    return text


MAX_ANSWERS = 16
"""``/api/runs`` answers kept (distinct filters)."""


def runs_json(cache: RunsCache, *, where: str | None = None, experiment: str | None = None) -> str:
    """``/api/runs`` as JSON text: the rows, the config keys that vary between the runs, the
    summary metrics they have."""
    return runs_answer(cache, where=where, experiment=experiment).text


def runs_answer(
    cache: RunsCache, *, where: str | None = None, experiment: str | None = None
) -> Answer:
    """:func:`runs_json` as an :class:`Answer`: the same one again while no run changed."""
    entries, generation = cache.snapshot()
    query = (where, experiment)
    kept = cache.answers.get(query)
    if kept is not None and kept.generation == generation:
        return kept
    answer = Answer(generation, _runs_json(cache, entries, where=where, experiment=experiment))
    if not any(e.live for e in entries):
        with cache.answers_lock:
            cache.answers.pop(query, None)
            cache.answers[query] = answer
            while len(cache.answers) > MAX_ANSWERS:
                cache.answers.pop(next(iter(cache.answers)))
    return answer


def _runs_json(
    cache: RunsCache, entries: list[Entry], *, where: str | None, experiment: str | None
) -> str:
    readable, damaged = select(cache, where=where, experiment=experiment, entries=entries)
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
        known = sorted({e.record.experiment for e in cache.entries() if e.record is not None})
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
