"""Reading and indexing runs: :class:`Store` (the run directories and their SQLite index),
:class:`RunRecord`, ``--where`` queries, the metrics-file reader, and the pandas frames of
:func:`load_runs` / :func:`load_metrics`."""

from __future__ import annotations

from .query import compile_where
from .store import (
    FINAL_STATUSES,
    HEARTBEAT_INTERVAL_S,
    HEARTBEAT_STALE_S,
    SCHEMA_VERSION,
    STORE_DIRNAME,
    RunRecord,
    Store,
    find_project_root,
    new_run_id,
    process_identity,
    read_part,
    read_run,
    recorder_alive,
)

__all__ = [
    "FINAL_STATUSES",
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_STALE_S",
    "SCHEMA_VERSION",
    "STORE_DIRNAME",
    "RunRecord",
    "Store",
    "compile_where",
    "find_project_root",
    "new_run_id",
    "process_identity",
    "read_part",
    "read_run",
    "recorder_alive",
]
