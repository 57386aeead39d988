"""One run directory as readers see it: :class:`RunRecord` (run.json and summary.json, the status
made current), :func:`read_run`, :func:`read_part` for the other JSON parts, and the liveness
check that turns a 'running' run whose recorder died into 'crashed' without writing anything.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.io import read_json
from ..errors import StoreError

__all__ = [
    "FINAL_STATUSES",
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_STALE_S",
    "SCHEMA_VERSION",
    "RunRecord",
    "process_identity",
    "read_part",
    "read_run",
    "recorder_alive",
]

SCHEMA_VERSION = 1
"""The version of the store layout, written into every run.json as ``schema_version``."""
HEARTBEAT_STALE_S = 120.0
"""A 'running' run on another host counts as crashed when its heartbeat is older (seconds)."""
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


def record_of(run_dir: Path, meta: dict[str, Any], summary: dict[str, Any]) -> RunRecord:
    """The record of a run from its run.json and summary.json, the status made current."""
    return _current_status(_record_from_files(run_dir, meta, summary))


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
    meta, summary = read_run_files(path)
    return record_of(path, meta, summary)


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
