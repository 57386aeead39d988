"""The SQLite index of a store: a cache of each run's run.json and summary.json.

Only readers write it: listing brings it up to date from the run directories (a run whose files
changed, by mtime and size, is read again), so concurrent runs never contend on SQLite. It can be
deleted at any time; :meth:`replicator.store.Store.rebuild_index` recreates it. A schema_version
other than the store's empties it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._util.sqlite import open_cache_db
from ..errors import StoreError
from .record import SCHEMA_VERSION, read_run_files

__all__ = ["delete_index", "read_indexed"]


def _connect(path: Path) -> sqlite3.Connection:
    return open_cache_db(
        path,
        timeout=5.0,
        synchronous="NORMAL",
        table="runs",
        create_sql=(
            "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, dir TEXT NOT NULL, "
            "stamp TEXT NOT NULL, meta TEXT, summary TEXT, error TEXT)"
        ),
        schema_key="schema_version",
        schema=SCHEMA_VERSION,
    )


def read_indexed(
    path: Path, run_dirs: Iterable[Path], problems: list[tuple[Path, str]]
) -> list[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """(run directory, run.json, summary.json) of every readable run in ``run_dirs``, from the
        index at ``path`` where a run's files did not change, else from the files (updating the
        index). A damaged run is added to ``problems`` (its directory, the message); a damaged row of the index (bad JSON) is read
    again from the files. SQLite failures raise ``sqlite3.Error``."""
    conn = _connect(path)
    try:
        cached = {
            row[0]: row[1:]
            for row in conn.execute("SELECT id, stamp, meta, summary, error FROM runs")
        }
        seen: set[str] = set()
        found: list[tuple[Path, dict[str, Any], dict[str, Any]]] = []
        updates: list[tuple[str, str, str, str | None, str | None, str | None]] = []
        for run_dir in run_dirs:
            rid = run_dir.name
            seen.add(rid)
            stamp = _stamp(run_dir)
            hit = cached.get(rid)
            if hit is not None and hit[0] == stamp:
                _, meta_text, summary_text, error = hit
                if error:
                    problems.append((run_dir, error))
                    continue
                cached_files = _cached_files(meta_text, summary_text)
                if cached_files is not None:
                    found.append((run_dir, *cached_files))
                    continue
                # a damaged cache row: read the files again and replace it
            try:
                meta, summary = read_run_files(run_dir)
            except StoreError as exc:
                problems.append((run_dir, str(exc)))
                updates.append((rid, str(run_dir), stamp, None, None, str(exc)))
                continue
            updates.append((rid, str(run_dir), stamp, json.dumps(meta), json.dumps(summary), None))
            found.append((run_dir, meta, summary))
        gone = [rid for rid in cached if rid not in seen]
        if updates or gone:
            conn.execute("BEGIN")
            conn.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)", updates)
            conn.executemany("DELETE FROM runs WHERE id = ?", [(g,) for g in gone])
            conn.execute("COMMIT")
        return found
    finally:
        conn.close()


def _cached_files(
    meta_text: str | None, summary_text: str | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """run.json and summary.json as the index stored them; None when the row is damaged."""
    try:
        meta = json.loads(meta_text or "{}")
        summary = json.loads(summary_text or "{}")
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(meta, dict) or not isinstance(summary, dict):
        return None
    return meta, summary


def delete_index(path: Path) -> None:
    """Remove the index file and its WAL companions."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(str(path) + suffix)
        except FileNotFoundError:
            pass


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
