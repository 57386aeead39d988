"""Reading and indexing runs: :class:`Store` (the run directories, ``store.py``, and their SQLite
index, ``index.py``), :class:`RunRecord` (``record.py``), ``--where`` queries (``query.py``), the
metrics-file reader (``metrics.py``), and the pandas frames of :func:`load_runs` /
:func:`load_metrics` (``frames.py``)."""

from __future__ import annotations

from .query import compile_where
from .record import (
    FINAL_STATUSES,
    HEARTBEAT_INTERVAL_S,
    HEARTBEAT_STALE_S,
    SCHEMA_VERSION,
    RunRecord,
    process_identity,
    read_part,
    read_run,
    recorder_alive,
)
from .store import STORE_DIRNAME, DamagedRun, Store, StoreLike, find_project_root, new_run_id

__all__ = [
    "FINAL_STATUSES",
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_STALE_S",
    "SCHEMA_VERSION",
    "STORE_DIRNAME",
    "DamagedRun",
    "RunRecord",
    "Store",
    "StoreLike",
    "compile_where",
    "find_project_root",
    "new_run_id",
    "process_identity",
    "read_part",
    "read_run",
    "recorder_alive",
]
