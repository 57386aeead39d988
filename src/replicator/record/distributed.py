"""Distributed training (``torchrun``, one process per rank): which rank this process is, what each
rank records, and how the ranks of one launch find the one run they share.

A launcher such as ``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in each worker.
With ``WORLD_SIZE`` above 1 every rank that calls ``start()`` records into the same run:

* rank 0 owns what a run has once: ``summary.json``, checkpoints, ``seeding.json``, the script's
  config and, without ``replicator run``, ``run.json`` and the status;
* rank ``r`` writes its metrics to ``metrics.rank{r}.jsonl`` (rank 0 to ``metrics.jsonl``), so
  two processes never append to one file;
* every rank writes its own ``ranks/rank{r}.json`` (RANK, LOCAL_RANK, WORLD_SIZE, host, pid and
  its status), the only file it shares with no one.

Under ``replicator run -- torchrun ...`` the launcher opened the run and every worker inherits
``REPLICATOR_RUN_DIR``. Under a bare ``torchrun`` there is no launcher: rank 0 opens the run and
publishes it in the store as ``launches/KEY.json``, where KEY is a hash of what every worker of
one launch shares (``TORCHELASTIC_RUN_ID``, ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``);
the other ranks wait for it (:data:`REPLICATOR_RENDEZVOUS_TIMEOUT_S`, 120 s by default) and join.
A publication left by an earlier launch with the same key is not taken: on rank 0's host it must
come from the same torchrun agent (the parent process), elsewhere it must be younger than the
waiting process.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._protocol import REPLICATOR_RENDEZVOUS_TIMEOUT_S
from .._util.io import atomic_write_json, read_json
from ..errors import StoreError, UsageError
from ..redact import redact_argv
from ..store.record import process_identity, process_start_time, rank_file, read_ranks

__all__ = [
    "REPLICATOR_RENDEZVOUS_TIMEOUT_S",
    "DistributedContext",
    "failed_ranks",
    "launch_command",
    "publish_run",
    "wait_for_run",
    "write_rank_record",
]

#: How often a waiting rank looks for rank 0's publication (seconds).
POLL_INTERVAL_S = 0.05
#: Clock difference between hosts tolerated when a publication is judged by its age (seconds).
CLOCK_SLACK_S = 30.0


def _rank_variable(environ: Mapping[str, str], name: str, default: int | None) -> int | None:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(
            f"${name} must be an integer >= 0 (torchrun sets it in each worker), got {text!r}. "
            "Unset it, or launch the script with torchrun."
        )
    return value


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a distributed launch, from ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``."""

    rank: int
    local_rank: int
    world_size: int
    launch_key: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> DistributedContext | None:
        """The context of a worker of a launch with ``WORLD_SIZE`` > 1; None otherwise."""
        world_size = _rank_variable(environ, "WORLD_SIZE", None)
        if world_size is None or world_size <= 1:
            return None
        rank = _rank_variable(environ, "RANK", None)
        if rank is None:
            raise UsageError(
                f"$WORLD_SIZE is {world_size} but $RANK is not set: replicator cannot tell "
                "which rank this process is. Launch with torchrun, or set RANK in each process."
            )
        if rank >= world_size:
            raise UsageError(f"$RANK is {rank}, not below $WORLD_SIZE ({world_size}).")
        local_rank = _rank_variable(environ, "LOCAL_RANK", rank)
        shared = "|".join(
            environ.get(name, "")
            for name in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE")
        )
        key = hashlib.sha256(shared.encode()).hexdigest()[:16]
        return cls(
            rank=rank, local_rank=int(local_rank or 0), world_size=world_size, launch_key=key
        )

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the rank that writes what a run has once."""
        return self.rank == 0

    def as_dict(self) -> dict[str, int]:
        return {"rank": self.rank, "local_rank": self.local_rank, "world_size": self.world_size}


def write_rank_record(
    run_dir: Path, context: DistributedContext, status: str, **fields: Any
) -> None:
    """Write this rank's ``ranks/rank{r}.json`` (at start, and with the final status at finish)."""
    path = rank_file(run_dir, context.rank)
    try:
        previous = read_json(path)
    except (OSError, ValueError):
        previous = None
    now = time.time()
    record: dict[str, Any] = {"started": now}
    if isinstance(previous, dict) and previous.get("pid") == os.getpid():
        record.update(previous)  # this process's own record from its start
    record.update(context.as_dict(), **process_identity(), status=status)
    if status != "running":
        record["ended"] = now
    record.update(fields)
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write_json(path, record, fsync=status != "running")
    except OSError as exc:
        raise StoreError.from_os_error(exc, path=path) from exc


def failed_ranks(run_dir: Path) -> list[str]:
    """One line per rank that failed, was interrupted or died (read by rank 0 at its finish)."""
    return [
        f"rank {rank} {info.get('status')}: {info.get('error') or 'no error recorded'}"
        for rank, info in sorted(read_ranks(run_dir).items())
        if rank != 0 and info.get("status") in ("failed", "interrupted", "crashed")
    ]


def launch_command() -> list[str] | None:
    """The command line of the process that started this one (``torchrun ...``), redacted;
    None where the system does not say (it is read from /proc)."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    argv = [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
    return redact_argv(argv) if argv else None


def _publication(store_root: Path, context: DistributedContext) -> Path:
    return store_root / "launches" / f"{context.launch_key}.json"


def _agent() -> dict[str, Any]:
    """The process that started this one (the torchrun agent), as every local rank sees it."""
    parent = os.getppid()
    return {"pid": parent, "pid_start": process_start_time(parent), "host": socket.gethostname()}


def publish_run(store_root: Path, context: DistributedContext, run_id: str, run_dir: Path) -> None:
    """Rank 0: tell the other ranks of this launch which run to join."""
    path = _publication(store_root, context)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            path,
            {
                "run_id": run_id,
                "run_dir": str(run_dir),
                "time": time.time(),
                "world_size": context.world_size,
                "agent": _agent(),
            },
        )
    except OSError as exc:
        raise StoreError.from_os_error(exc, path=path) from exc


def _started_at() -> float:
    """When this process started (seconds since the epoch); now when the system cannot say."""
    ticks = process_start_time(os.getpid())
    try:
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + int(ticks or "") / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration, AttributeError):
        return time.time()


def _is_this_launch(published: Any, context: DistributedContext, started: float) -> bool:
    if not isinstance(published, dict) or published.get("world_size") != context.world_size:
        return False
    agent = published.get("agent")
    if isinstance(agent, dict) and agent.get("host") == socket.gethostname():
        return agent == _agent()
    stamp = published.get("time")
    return isinstance(stamp, (int, float)) and stamp >= started - CLOCK_SLACK_S


def wait_for_run(store_root: Path, context: DistributedContext) -> tuple[str, Path]:
    """A rank above 0: wait for rank 0 of this launch to publish its run; ``(run_id, run_dir)``.

    Raises :class:`~replicator.errors.UsageError` after ``$REPLICATOR_RENDEZVOUS_TIMEOUT_S``.
    """
    timeout = REPLICATOR_RENDEZVOUS_TIMEOUT_S.get() or 120.0
    path = _publication(store_root, context)
    started = _started_at()
    deadline = time.monotonic() + timeout
    while True:
        try:
            published = read_json(path)
        except (OSError, ValueError):
            published = None
        if _is_this_launch(published, context, started):
            run_dir = Path(published["run_dir"])
            if (run_dir / "run.json").exists():
                return str(published["run_id"]), run_dir
        if time.monotonic() >= deadline:
            raise UsageError(
                f"Rank {context.rank} of {context.world_size} waited {timeout:g} s for rank 0 to "
                f"open this launch's run (it publishes it as {path}). Every rank must call "
                "replicator.start() with the same store (rank 0 opens the run, the others join "
                "it), or launch with `replicator run -- torchrun ...`. Set "
                f"${REPLICATOR_RENDEZVOUS_TIMEOUT_S.name} to wait longer."
            )
        time.sleep(POLL_INTERVAL_S)
