"""One run directory as readers see it: :class:`RunRecord` (run.json and summary.json, the status
made current), :func:`read_run`, :func:`read_part` for the other JSON parts, and the liveness
check that turns a 'running' run whose recorder died into 'crashed' without writing anything.

A distributed run (``torchrun``) holds one small file per rank, ``ranks/rank{r}.json``
(:func:`rank_file`), written only by that rank's process: its RANK, LOCAL_RANK and WORLD_SIZE,
host and pid, and its own status. Readers merge them into ``meta["distributed"]``
(``{"world_size": 2, "ranks": {"0": {...}, "1": {...}}}``); a run that reads 'completed' while a
rank failed or died reads 'failed', naming the rank (derived, nothing written).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._protocol import REPLICATOR_HEARTBEAT_STALE_S
from .._util.io import read_json
from .._util.warnings import warn
from ..errors import DamagedRunError, StoreError
from .metrics import metrics_path
from .relocate import relocate_meta

__all__ = [
    "FINAL_STATUSES",
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_STALE_S",
    "SCHEMA_VERSION",
    "RunRecord",
    "damaged_fields",
    "distributed_record",
    "process_identity",
    "process_start_time",
    "rank_file",
    "read_part",
    "read_ranks",
    "read_run",
    "recorder_alive",
]

SCHEMA_VERSION = 1
"""The version of the store layout, written into every run.json as ``schema_version``."""
HEARTBEAT_STALE_S = 120.0
"""A 'running' run on another host counts as crashed when its heartbeat is older (seconds); the
default of ``REPLICATOR_HEARTBEAT_STALE_S``, which overrides it."""
HEARTBEAT_INTERVAL_S = 10.0
"""How often a live recorder touches its run's ``heartbeat`` file (seconds)."""
FINAL_STATUSES = ("completed", "failed", "interrupted", "crashed")
"""The statuses a run ends in; a run in none of them is still 'running'."""


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
        """Seconds from start to end (to now while running); None when the start is unknown."""
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
            # only for a distributed run, so that other runs' JSON is unchanged
            **({"distributed": self.meta["distributed"]} if "distributed" in self.meta else {}),
        }

    def part(self, name: str) -> dict[str, Any]:
        """One JSON part of the run directory (``code.json``, ``environment.json``...), {} when
        absent or unreadable."""
        return read_part(self.dir, name)


# Sections of a part that readers use as mappings or lists; one of another type is left out.
_PART_SECTIONS: dict[str, dict[str, type]] = {
    "environment.json": dict.fromkeys(
        ("python", "os", "packages", "torch", "lock_files", "relevant_env", "env"), dict
    ),
    "hardware.json": {"cpu": dict, "memory": dict, "gpu": dict, "blas": list},
}


def read_part(run_dir: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """A run's JSON part (environment.json, hardware.json, code.json...), {} when absent.

    A section of the wrong type (``"packages": 5`` in environment.json) is left out with a
    RuntimeWarning naming the file and the field."""
    path = Path(run_dir) / name
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    if name in ("run.json", "code.json"):
        # paths as the recording host saw them, resolved against where the run is now
        data = relocate_meta(path.parent, data, name=name)
    for key, kind in _PART_SECTIONS.get(name, {}).items():
        if key in data and data[key] is not None and not isinstance(data[key], kind):
            shown = repr(data.pop(key))
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            expected = "a mapping" if kind is dict else "a list"
            warn(
                f"{path}: damaged field '{key}' (must be {expected}, got {shown}); left out.",
                RuntimeWarning,
            )
    packages = data.get("packages")
    if name == "environment.json" and isinstance(packages, dict):
        bad = [k for k, v in packages.items() if not isinstance(v, dict)]
        for key in bad:
            del packages[key]
        if bad:
            warn(
                f"{path}: damaged entries of 'packages' left out: {', '.join(bad[:5])}.",
                RuntimeWarning,
            )
    return data


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


def process_start_time(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (Linux); None when unknown or
    dead. With the pid it tells one process from a later one that reuses its pid."""
    return _pid_start_time(pid)


def process_identity() -> dict[str, Any]:
    """pid, its start time and the host, stored in run.json to detect a dead recorder."""
    pid = os.getpid()
    return {"pid": pid, "pid_start": _pid_start_time(pid), "host": socket.gethostname()}


def recorder_alive(
    meta: dict[str, Any], heartbeat_mtime: float | None, *, stale_after: float | None = None
) -> bool:
    """Whether the process recording a 'running' run still lives; ``stale_after`` is the
    store's threshold (:attr:`Store.heartbeat_stale_s`), default the variable's or 120 s."""
    pid = meta.get("pid")
    if meta.get("host") == socket.gethostname() and isinstance(pid, int):
        start = _pid_start_time(pid)
        if start is None:
            return False
        recorded = meta.get("pid_start")
        return recorded is None or recorded == start
    if heartbeat_mtime is None:
        return False
    stale_after = stale_after or REPLICATOR_HEARTBEAT_STALE_S.get() or HEARTBEAT_STALE_S
    return time.time() - heartbeat_mtime < stale_after


# The run.json fields a RunRecord is built from, with the types they must have (None allowed).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "experiment": (str,),
    "name": (str,),
    "status": (str,),
    "seed": (int,),
    "started": (int, float),
    "ended": (int, float),
    "config": (dict,),
    "command": (list,),
    "exit_code": (int,),
}
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    dict: "a mapping",
    list: "a list",
}


def damaged_fields(meta: dict[str, Any]) -> dict[str, str]:
    """``{field: problem}`` for each run.json field a RunRecord needs that has the wrong type."""
    damaged = {}
    for key, types in _FIELD_TYPES.items():
        value = meta.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            expected = _TYPE_NAMES[types[-1]]
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            damaged[key] = f"'{key}' must be {expected}, got {shown}"
    return damaged


def _record_from_files(run_dir: Path, meta: dict[str, Any], summary: dict[str, Any]) -> RunRecord:
    meta = relocate_meta(run_dir, meta)
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


RANKS_DIR = "ranks"
"""The folder of a distributed run that holds one ``rank{r}.json`` per rank."""


def rank_file(run_dir: str | os.PathLike[str], rank: int) -> Path:
    """The file in which rank ``rank`` of a distributed run records itself."""
    return Path(run_dir) / RANKS_DIR / f"rank{rank}.json"


def read_ranks(run_dir: str | os.PathLike[str]) -> dict[int, dict[str, Any]]:
    """``{rank: record}`` of a distributed run's ``ranks/rank{r}.json`` ({} for other runs).

    A rank whose file still says 'running' while its process is gone reads 'crashed'. A damaged
    file is left out with a warning naming it."""
    folder = Path(run_dir) / RANKS_DIR
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return {}
    ranks: dict[int, dict[str, Any]] = {}
    for name in names:
        if not (name.startswith("rank") and name.endswith(".json")):
            continue
        try:
            data = read_json(folder / name)
        except (OSError, ValueError):
            data = None
        rank = data.get("rank") if isinstance(data, dict) else None
        if isinstance(rank, bool) or not isinstance(rank, int):
            warn(f"{folder / name}: damaged rank record; left out.", RuntimeWarning)
            continue
        if data.get("status") == "running" and not recorder_alive(data, _last_sign(run_dir, rank)):
            data = {**data, "status": "crashed", "error": "the rank's process is gone"}
        ranks[rank] = data
    return ranks


def _last_sign(run_dir: str | os.PathLike[str], rank: int) -> float | None:
    """When a rank on another host last showed life: the run's heartbeat (rank 0 beats for the
    launch), its rank file or its metrics file, whichever is newest."""
    folder = Path(run_dir)
    times = []
    for path in (folder / "heartbeat", rank_file(folder, rank), metrics_path(folder, rank)):
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            pass
    return max(times) if times else None


def distributed_record(meta: dict[str, Any], ranks: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """run.json's ``distributed`` entry with the ranks' own records merged in."""
    sizes = [r["world_size"] for r in ranks.values() if isinstance(r.get("world_size"), int)]
    return {
        **(meta.get("distributed") or {}),
        "world_size": max(sizes) if sizes else len(ranks),
        "ranks": {str(rank): info for rank, info in sorted(ranks.items())},
    }


def _with_ranks(record: RunRecord) -> RunRecord:
    """The record with its ranks merged in; 'completed' reads 'failed' when a rank failed."""
    ranks = read_ranks(record.dir)
    if not ranks:
        return record
    meta = {**record.meta, "distributed": distributed_record(record.meta, ranks)}
    status = record.status
    failed = [
        (rank, info)
        for rank, info in sorted(ranks.items())
        if info.get("status") in ("failed", "interrupted", "crashed")
    ]
    if failed and status == "completed":
        rank, info = failed[0]
        status = "failed"
        meta["error"] = (
            f"rank {rank} {info.get('status')}: {info.get('error') or 'no error recorded'}"
        )
    return dataclasses.replace(record, status=status, meta=meta)


def record_of(
    run_dir: Path,
    meta: dict[str, Any],
    summary: dict[str, Any],
    *,
    partial: bool = False,
    stale_after: float | None = None,
) -> RunRecord:
    """The record of a run from its run.json and summary.json, the status made current.

    A field of the wrong type (``"started": "yesterday"``) raises :class:`DamagedRunError`
    naming the run directory and the field; with ``partial`` the record is built without the
    damaged fields (read as unknown) and ``meta["damaged"]`` lists them, for ``show``."""
    damaged = damaged_fields(meta)
    if damaged and not partial:
        raise DamagedRunError(
            f"{run_dir}: damaged run.json: {'; '.join(damaged.values())}. "
            "Fix the field or remove the run directory.",
            run_dir=run_dir,
            fields=tuple(damaged),
        )
    if damaged:
        meta = {k: v for k, v in meta.items() if k not in damaged}
        meta["damaged"] = [f"run.json: {problem}" for problem in damaged.values()]
    if not isinstance(summary, dict):
        summary = {}
    return _with_ranks(_current_status(_record_from_files(run_dir, meta, summary), stale_after))


def _current_status(record: RunRecord, stale_after: float | None = None) -> RunRecord:
    """Turn a 'running' record whose recorder died into 'crashed' (derived, nothing written)."""
    if record.status != "running":
        return record
    try:
        hb = (record.dir / "heartbeat").stat().st_mtime
    except OSError:
        hb = None
    if recorder_alive(record.meta, hb, stale_after=stale_after):
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


def read_run(
    run_dir: str | os.PathLike[str], *, partial: bool = False, stale_after: float | None = None
) -> RunRecord:
    """Read one run directory; raises StoreError naming the file (and the field) when run.json
    is damaged. With ``partial``, wrong-typed fields are left out instead (see
    :func:`record_of`): ``show`` of a damaged run shows what it can."""
    path = Path(run_dir)
    meta, summary = read_run_files(path)
    return record_of(path, meta, summary, partial=partial, stale_after=stale_after)


def read_run_files(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
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
