"""The local store: plain run directories under ``.replicator/`` plus a rebuildable SQLite index.

Layout (``schema_version`` 1)::

    .replicator/
      index.sqlite                  cache of run.json + summary.json; delete it any time
      experiments/NAME/sweeps/ID.json   seeds drawn for a ``--seeds N`` sweep (root + list)
      runs/RUN_ID/                  one directory per run; a run writes only here
        run.json                    identity, status, command, seed, resolved config, code summary
        status.jsonl                status history (append-only)
        heartbeat                   touched while the recorder is alive
        config.yaml  hparams.csv    resolved config, flat parameters
        config/                     raw config files and overrides as given
        code.json  code.patch       git facts; patch of the snapshot against HEAD
        environment.json            python, OS, packages with origins, lock files, env vars
        hardware.json               CPU, memory, GPUs
        stdout.log  stderr.log      captured output (tee'd)
        metrics.jsonl               {"step", "time", "key", "value"} per line, append-only
        summary.json                final metrics
        outputs.json                files the command produced, with size and hash

The store is found from ``REPLICATOR_STORE``, else a ``replicator.yaml`` (key ``store:``) in the
project root, else ``.replicator/`` in the project root (the nearest directory holding
``replicator.yaml``, ``.replicator/`` or ``.git``, else the working directory).

The index is a cache only readers write: listing brings it up to date from the run directories,
so concurrent runs never contend on SQLite and the store works on NFS or Lustre. If SQLite fails
(locking on a shared filesystem, a damaged file) listing reads the files directly.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.io import read_json
from ..errors import ConfigError, RunNotFoundError, StoreError

__all__ = [
    "SCHEMA_VERSION",
    "RunRecord",
    "Store",
    "find_project_root",
    "new_run_id",
]

SCHEMA_VERSION = 1
STORE_DIRNAME = ".replicator"
# A run on another host is crashed when its heartbeat is older than this (seconds).
HEARTBEAT_STALE_S = 120.0
HEARTBEAT_INTERVAL_S = 10.0
FINAL_STATUSES = ("completed", "failed", "interrupted", "crashed")


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest directory at or above ``start`` with replicator.yaml, .replicator/ or .git."""
    here = Path(start or os.getcwd()).resolve()
    # The nearest marker wins: a project's own repository is not swallowed by a store that
    # happens to exist in a parent folder (say /tmp/.replicator).
    for candidate in (here, *here.parents):
        if (
            (candidate / "replicator.yaml").is_file()
            or (candidate / STORE_DIRNAME).is_dir()
            or (candidate / ".git").exists()
        ):
            return candidate
    return here


_last_id: tuple[str, int] = ("", -1)


def new_run_id(now: float | None = None) -> str:
    """``YYYYMMDD-HHMMSS-xxxx``: sortable by time to the millisecond.

    The suffix is the millisecond (high 10 bits) and 6 random bits; ids issued by one process
    never go backwards. Uniqueness across concurrent starts comes from creating the directory
    with ``mkdir`` (which fails when the name exists) and retrying; see
    :meth:`Store.create_run_dir`.
    """
    global _last_id
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    millis = int((now % 1) * 1000) % 1000
    suffix = (millis << 6) | random.getrandbits(6)
    if stamp == _last_id[0] and suffix <= _last_id[1]:
        suffix = min(_last_id[1] + 1, 0xFFFF)
    _last_id = (stamp, suffix)
    return f"{stamp}-{suffix:04x}"


@dataclass(frozen=True)
class RunRecord:
    """What ``ls`` and readers know of a run: run.json and summary.json, status made current."""

    id: str
    dir: Path
    experiment: str
    name: str | None
    status: str
    seed: int | None
    started: float | None
    ended: float | None
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else time.time()
        return max(0.0, end - self.started)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view used by ``--json`` and ``--where``."""
        return {
            "id": self.id,
            "dir": str(self.dir),
            "experiment": self.experiment,
            "name": self.name,
            "status": self.status,
            "seed": self.seed,
            "started": self.started,
            "ended": self.ended,
            "duration": self.duration,
            "config": self.config,
            "summary": self.summary,
            "exit_code": self.meta.get("exit_code"),
            "command": self.meta.get("command"),
        }

    def part(self, name: str) -> dict[str, Any]:
        """One JSON part of the run directory (``code.json``, ``environment.json``...), {} when
        absent or unreadable."""
        return read_part(self.dir, name)


def read_part(run_dir: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """A run's JSON part (environment.json, hardware.json, code.json...), {} when absent."""
    try:
        with open(Path(run_dir) / name, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_start_time(pid: int) -> str | None:
    """Start time of a process (clock ticks since boot) from /proc, to tell pid reuse apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    fields = data[data.rfind(")") + 2 :].split()
    if fields and fields[0] in ("Z", "X"):
        return None  # a zombie (killed, not yet reaped) is not alive
    return fields[19] if len(fields) > 19 else None


def process_identity() -> dict[str, Any]:
    """pid, its start time and the host, stored in run.json to detect a dead recorder."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": _pid_start_time(pid), "host": socket.gethostname()}


def recorder_alive(meta: dict[str, Any], heartbeat_mtime: float | None) -> bool:
    """Whether the process recording a 'running' run still lives."""
    pid = meta.get("pid")
    if meta.get("host") == socket.gethostname() and isinstance(pid, int):
        start = _pid_start_time(pid)
        if start is None:
            return False
        recorded = meta.get("pid_start")
        return recorded is None or recorded == start
    if heartbeat_mtime is None:
        return False
    return time.time() - heartbeat_mtime < HEARTBEAT_STALE_S


def _record_from_files(run_dir: Path, meta: dict[str, Any], summary: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=str(meta.get("id", run_dir.name)),
        dir=run_dir,
        experiment=str(meta.get("experiment") or "default"),
        name=meta.get("name"),
        status=str(meta.get("status", "unknown")),
        seed=meta.get("seed"),
        started=meta.get("started"),
        ended=meta.get("ended"),
        config=meta.get("config") or {},
        summary=summary,
        meta={k: v for k, v in meta.items() if k not in ("config",)},
    )


def _current_status(record: RunRecord) -> RunRecord:
    """Turn a 'running' record whose recorder died into 'crashed' (derived, nothing written)."""
    if record.status != "running":
        return record
    try:
        hb = (record.dir / "heartbeat").stat().st_mtime
    except OSError:
        hb = None
    if recorder_alive(record.meta, hb):
        return record
    # The last sign of life: the heartbeat, or a later write of metrics or output.
    signs = [hb] if hb is not None else []
    for name in ("metrics.jsonl", "stdout.log", "stderr.log", "summary.json"):
        try:
            signs.append((record.dir / name).stat().st_mtime)
        except OSError:
            pass
    ended = max(signs) if signs else record.started
    return RunRecord(
        id=record.id,
        dir=record.dir,
        experiment=record.experiment,
        name=record.name,
        status="crashed",
        seed=record.seed,
        started=record.started,
        ended=ended,
        config=record.config,
        summary=record.summary,
        meta={**record.meta, "crash_detected": "recorder process is gone (stale heartbeat)"},
    )


def read_run(run_dir: str | os.PathLike[str]) -> RunRecord:
    """Read one run directory; raises StoreError naming the file when run.json is damaged."""
    path = Path(run_dir)
    meta, summary = _read_files(path)
    return _current_status(_record_from_files(path, meta, summary))


def _read_files(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """run.json and summary.json as stored (the status not yet made current)."""
    try:
        meta = read_json(path / "run.json")
    except FileNotFoundError as exc:
        raise StoreError(f"{path}: no run.json; this is not a run directory.") from exc
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"{path / 'run.json'} is damaged ({exc}). The run's other files are intact; "
            "fix or remove the directory."
        ) from exc
    if not isinstance(meta, dict):
        raise StoreError(f"{path / 'run.json'} does not hold a JSON object; fix or remove the run.")
    summary: dict[str, Any] = {}
    try:
        loaded = read_json(path / "summary.json")
        if isinstance(loaded, dict):
            summary = loaded
    except (OSError, ValueError):
        pass
    return meta, summary


class Store:
    """A replicator store on disk. ``Store.open()`` finds the one for the working directory."""

    def __init__(
        self, root: str | os.PathLike[str], *, project_root: str | os.PathLike[str] | None = None
    ):
        self.root = Path(root).resolve()
        self.project_root = Path(project_root).resolve() if project_root else self.root.parent
        self.runs_dir = self.root / "runs"
        self.experiments_dir = self.root / "experiments"
        self.index_path = self.root / "index.sqlite"
        self.problems: list[str] = []

    @classmethod
    def open(cls, start: str | os.PathLike[str] | None = None) -> Store:
        """The store for ``start`` (default: the working directory); see the module docstring."""
        env = os.environ.get("REPLICATOR_STORE")
        project = find_project_root(start)
        if env:
            return cls(Path(env).expanduser(), project_root=project)
        config_file = project / "replicator.yaml"
        if config_file.is_file():
            settings = _read_settings(config_file)
            if settings.get("store"):
                root = Path(str(settings["store"])).expanduser()
                if not root.is_absolute():
                    root = project / root
                return cls(root, project_root=project)
        return cls(project / STORE_DIRNAME, project_root=project)

    # ----------------------------------------------------------------- writing (one run only)
    def create_run_dir(self, *, now: float | None = None) -> tuple[str, Path]:
        """Create a fresh run directory with a unique, time-sortable id."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the store at {self.root}: {exc}") from exc
        for _ in range(1000):
            run_id = new_run_id(now)
            path = self.runs_dir / run_id
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return run_id, path
        raise StoreError(f"Could not find a free run id in {self.runs_dir} after 1000 tries.")

    def write_sweep(self, experiment: str, sweep: dict[str, Any]) -> Path:
        """Store the seeds drawn for a sweep under experiments/NAME/sweeps/ID.json."""
        from .._util.io import atomic_write_json

        folder = self.experiments_dir / _safe_name(experiment) / "sweeps"
        folder.mkdir(parents=True, exist_ok=True)
        return atomic_write_json(folder / f"{sweep['id']}.json", sweep)

    # ----------------------------------------------------------------- reading
    def run_dirs(self) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(self.runs_dir), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith("."):
                yield Path(entry.path)

    def resolve(self, ref: str) -> Path:
        """The run directory for an id, a unique id prefix or suffix, a run name, a path, ``last``
        or ``last~N`` (N runs before the last)."""
        ref = ref.strip()
        if not ref:
            raise RunNotFoundError("Empty run id. Use `replicator ls` to list runs.")
        candidate = Path(ref)
        if (candidate / "run.json").is_file():
            return candidate.resolve()
        ids = [p.name for p in self.run_dirs()]
        m = re.fullmatch(r"(?:last|latest)(?:~(\d*))?", ref)
        if m:
            # last~N: N runs before the last (git-style); last~ is last~1
            back = 0 if m.group(1) is None and "~" not in ref else int(m.group(1) or 1)
            if back >= len(ids):
                raise RunNotFoundError(
                    f"'{ref}': the store {self.root} has {len(ids)} run(s)."
                    if ids
                    else f"The store {self.root} has no runs yet."
                )
            return self.runs_dir / ids[-1 - back]
        if ref in ids:
            return self.runs_dir / ref
        matches = [i for i in ids if i.startswith(ref) or i.endswith(ref)]
        if not matches:
            named = [r.id for r in self.records() if r.name == ref]
            matches = named
        if len(matches) == 1:
            return self.runs_dir / matches[0]
        if not matches:
            raise RunNotFoundError(
                f"No run '{ref}' in {self.root}. Use `replicator ls` to list runs."
            )
        shown = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise RunNotFoundError(
            f"'{ref}' matches {len(matches)} runs ({shown}); give more of the id."
        )

    def get(self, ref: str) -> RunRecord:
        return read_run(self.resolve(ref))

    def records(self, *, use_index: bool = True) -> list[RunRecord]:
        """Every readable run, oldest first; damaged runs go to ``self.problems``, not raised."""
        self.problems = []
        if use_index and self.runs_dir.is_dir():
            try:
                return self._records_from_index()
            except sqlite3.Error as exc:
                self.problems.append(f"index unusable ({exc}); read the run directories directly")
        records = []
        for run_dir in self.run_dirs():
            try:
                records.append(read_run(run_dir))
            except StoreError as exc:
                self.problems.append(str(exc))
        return records

    def select(
        self,
        *,
        experiment: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        where: str | Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[RunRecord]:
        """Runs matching the filters, oldest first: ``where`` is a ``--where`` expression over
        ``RunRecord.as_dict()`` (see :mod:`replicator.store.query`) or a predicate."""
        records = self.records()
        if experiment is not None:
            wanted = {experiment} if isinstance(experiment, str) else set(experiment)
            records = [r for r in records if r.experiment in wanted]
        if status is not None:
            allowed = {status} if isinstance(status, str) else set(status)
            records = [r for r in records if r.status in allowed]
        if where is None:
            return records
        from ..errors import QueryError
        from .query import compile_where

        predicate = where if callable(where) else compile_where(where)
        kept = []
        for record in records:
            try:
                keep = predicate(record.as_dict())
            except QueryError:
                raise
            except Exception as exc:
                raise QueryError(f"--where {where!r} failed on run {record.id}: {exc}") from exc
            if keep:
                kept.append(record)
        return kept

    # ----------------------------------------------------------------- index (a cache)
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.index_path, timeout=5.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, dir TEXT NOT NULL, "
            "stamp TEXT NOT NULL, meta TEXT, summary TEXT, error TEXT)"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT)")
        row = conn.execute("SELECT value FROM info WHERE key='schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            conn.execute("DELETE FROM runs")
            conn.execute(
                "INSERT OR REPLACE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        return conn

    def _records_from_index(self) -> list[RunRecord]:
        conn = self._connect()
        try:
            cached = {
                row[0]: row[1:]
                for row in conn.execute("SELECT id, stamp, meta, summary, error FROM runs")
            }
            seen: set[str] = set()
            records: list[RunRecord] = []
            updates: list[tuple[str, str, str, str | None, str | None, str | None]] = []
            for run_dir in self.run_dirs():
                rid = run_dir.name
                seen.add(rid)
                stamp = _stamp(run_dir)
                hit = cached.get(rid)
                if hit is not None and hit[0] == stamp:
                    _, meta_text, summary_text, error = hit
                    if error:
                        self.problems.append(error)
                        continue
                    meta = json.loads(meta_text or "{}")
                    summary = json.loads(summary_text or "{}")
                    records.append(_current_status(_record_from_files(run_dir, meta, summary)))
                    continue
                try:
                    meta, summary = _read_files(run_dir)
                except StoreError as exc:
                    self.problems.append(str(exc))
                    updates.append((rid, str(run_dir), stamp, None, None, str(exc)))
                    continue
                updates.append(
                    (rid, str(run_dir), stamp, json.dumps(meta), json.dumps(summary), None)
                )
                records.append(_current_status(_record_from_files(run_dir, meta, summary)))
            gone = [rid for rid in cached if rid not in seen]
            if updates or gone:
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)", updates)
                conn.executemany("DELETE FROM runs WHERE id = ?", [(g,) for g in gone])
                conn.execute("COMMIT")
            return records
        finally:
            conn.close()

    def rebuild_index(self) -> int:
        """Delete and recreate the index from the run directories; returns the run count."""
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(str(self.index_path) + suffix)
            except FileNotFoundError:
                pass
        return len(self.records())


def _stamp(run_dir: Path) -> str:
    """Change marker of a run's indexed files: mtime and size of run.json and summary.json."""
    parts = []
    for name in ("run.json", "summary.json"):
        try:
            st = os.stat(run_dir / name)
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append("-")
    return "|".join(parts)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "default"


def _read_settings(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML ({exc}).") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings such as 'store: PATH'.")
    return data
