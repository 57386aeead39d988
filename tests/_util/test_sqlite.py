"""open_cache_db: the shared setup of the store index and the fingerprint stat cache."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from replicator._util.sqlite import open_cache_db

_CREATE = "CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, value TEXT)"


def _open(path: Path, schema: int) -> sqlite3.Connection:
    return open_cache_db(
        path,
        timeout=5.0,
        synchronous="NORMAL",
        table="rows",
        create_sql=_CREATE,
        schema_key="schema_version",
        schema=schema,
    )


def test_rows_survive_reopening_with_the_same_schema(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    conn = _open(path, 1)
    conn.execute("INSERT INTO rows VALUES ('a', '1')")
    conn.close()
    conn = _open(path, 1)
    assert conn.execute("SELECT key, value FROM rows").fetchall() == [("a", "1")]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_another_schema_empties_the_table_and_records_itself(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    conn = _open(path, 1)
    conn.execute("INSERT INTO rows VALUES ('a', '1')")
    conn.close()
    conn = _open(path, 2)
    assert conn.execute("SELECT * FROM rows").fetchall() == []
    info = conn.execute("SELECT key, value FROM info").fetchall()
    assert info == [("schema_version", "2")]
    conn.close()
