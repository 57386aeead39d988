"""A sweep's record (``experiments/NAME/sweeps/ID.json``) and where each of its jobs stands.

The record is written by the submitting process only, atomically: the spec as given, the root
of the draw, the executor, and each job's index, overrides and seed. A job's run is found by
reading run directories: each job's ``replicator run`` records ``{"sweep": ID, "index": i}`` in
its ``run.json``'s ``seeding`` (``REPLICATOR_SWEEP_JOB``), so compute nodes write nothing but
their own run directory and the status is as current as the runs themselves.

A ``replicator run --seeds N`` sweep has a record of the same place and id (its seeds and root);
its status is read the same way.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.io import read_json
from ..errors import RunNotFoundError, StoreError
from ..store import Store
from ..store.record import RunRecord, read_run

__all__ = [
    "JobStatus",
    "SweepRecord",
    "find_sweep",
    "job_index",
    "job_statuses",
    "list_sweeps",
    "sweep_runs",
]

# run status -> job state in a sweep's status
_STATE_OF_RUN = {
    "completed": "completed",
    "running": "running",
    "failed": "failed",
    "crashed": "failed",
    "interrupted": "failed",
}


@dataclass
class SweepRecord:
    """``experiments/NAME/sweeps/ID.json``: what the sweep is and what it ran."""

    path: Path
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def experiment(self) -> str:
        return str(self.data.get("experiment") or "default")

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """Each job's ``index``, ``overrides`` and ``seed`` (a ``--seeds`` sweep: its seeds)."""
        jobs = self.data.get("jobs")
        if isinstance(jobs, list):
            return [j for j in jobs if isinstance(j, dict) and isinstance(j.get("index"), int)]
        seeds = self.data.get("seeds") or []
        return [{"index": i, "overrides": [], "seed": s} for i, s in enumerate(seeds)]

    @property
    def submitter_alive(self) -> bool:
        """Whether the process that submitted the sweep still runs it (same host only)."""
        if self.data.get("state") != "running":
            return False
        if self.data.get("host") != socket.gethostname():
            return True  # cannot tell from here: trust the record
        pid = self.data.get("pid")
        if not isinstance(pid, int):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def save(self, store: Store) -> None:
        """Write the record (atomically), by the submitting process only."""
        self.path = store.write_sweep(self.experiment, self.data)

    @classmethod
    def read(cls, path: Path) -> SweepRecord:
        try:
            data = read_json(path)
        except (OSError, ValueError) as exc:
            raise StoreError(f"Cannot read the sweep record {path}: {exc}") from exc
        if not isinstance(data, dict) or "id" not in data:
            raise StoreError(f"The sweep record {path} is not a sweep (no 'id').")
        return cls(path, data)


@dataclass(frozen=True)
class JobStatus:
    """Where one job of a sweep stands: queued, running, completed, failed (or pruned)."""

    index: int
    state: str
    overrides: tuple[str, ...]
    seed: int | None
    run: RunRecord | None = None
    runs: tuple[str, ...] = field(default=())  # every run of the job, oldest first

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "state": self.state,
            "overrides": list(self.overrides),
            "seed": self.seed,
            "run": self.run_id,
            "run_status": self.run.status if self.run is not None else None,
            "runs": list(self.runs),
        }


def list_sweeps(store: Store) -> list[SweepRecord]:
    """Every sweep record of the store, oldest first."""
    found = []
    for path in sorted(store.experiments_dir.glob("*/sweeps/*.json")):
        try:
            found.append(SweepRecord.read(path))
        except StoreError:
            continue
    return sorted(found, key=lambda r: (float(r.data.get("created") or 0), r.id))


def find_sweep(store: Store, ref: str) -> SweepRecord:
    """The sweep whose id is ``ref`` (or starts or ends with it), or ``last``."""
    ref = ref.strip()
    sweeps = list_sweeps(store)
    if ref in ("last", "latest"):
        if not sweeps:
            raise RunNotFoundError(f"The store {store.root} has no sweeps yet.")
        return sweeps[-1]
    exact = [s for s in sweeps if s.id == ref]
    matches = exact or [s for s in sweeps if ref and (s.id.startswith(ref) or s.id.endswith(ref))]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFoundError(
            f"No sweep '{ref}' in {store.root}. Use `replicator sweep ls` to list sweeps."
        )
    listed = ", ".join(s.id for s in matches[:5])
    raise RunNotFoundError(f"'{ref}' matches {len(matches)} sweeps ({listed}); give more of it.")


def sweep_runs(
    store: Store, sweep_id: str, *, run_dirs: Iterable[Path] | None = None
) -> dict[int, list[RunRecord]]:
    """The runs of each job index of sweep ``sweep_id``, oldest first, read from run.json."""
    found: dict[int, list[RunRecord]] = {}
    stale_after = store.heartbeat_stale_s
    for run_dir in store.run_dirs() if run_dirs is None else run_dirs:
        index = job_index(run_dir, sweep_id)
        if index is None:
            continue
        try:
            record = read_run(run_dir, partial=True, stale_after=stale_after)
        except StoreError:
            continue
        found.setdefault(index, []).append(record)
    for runs in found.values():
        runs.sort(key=lambda r: (r.started or 0.0, r.id))
    return found


def job_index(run_dir: Path, sweep_id: str) -> int | None:
    """The job index a run of sweep ``sweep_id`` recorded, or None (another run, unreadable)."""
    try:
        with open(run_dir / "run.json", encoding="utf-8") as fh:
            seeding = json.load(fh).get("seeding") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(seeding, dict) or seeding.get("sweep") != sweep_id:
        return None
    index = seeding.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def job_statuses(store: Store, record: SweepRecord) -> list[JobStatus]:
    """Each job's state: its newest run's status (crashed and interrupted count as failed),
    ``pruned`` for a trial Optuna stopped, ``queued`` while the sweep waits to start it, else
    ``missing``."""
    runs = sweep_runs(store, record.id)
    alive = record.submitter_alive
    out = []
    for job in record.jobs:
        index = int(job["index"])
        job_runs = runs.get(index, [])
        newest = job_runs[-1] if job_runs else None
        if job.get("state") == "pruned":
            state = "pruned"
        elif newest is not None:
            state = _STATE_OF_RUN.get(newest.status, "failed")
        else:
            state = "queued" if alive else "missing"
        out.append(
            JobStatus(
                index=index,
                state=state,
                overrides=tuple(str(o) for o in job.get("overrides") or ()),
                seed=job.get("seed") if isinstance(job.get("seed"), int) else None,
                run=newest,
                runs=tuple(r.id for r in job_runs),
            )
        )
    return out


def new_record(store: Store, data: dict[str, Any]) -> SweepRecord:
    """A record for a sweep this process submits (``state`` running, with its host and pid)."""
    data = {**data, "created": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
    data["state"] = "running"
    folder = store.experiments_dir / "_" / "sweeps"  # replaced by save()
    return SweepRecord(folder / f"{data['id']}.json", data)
