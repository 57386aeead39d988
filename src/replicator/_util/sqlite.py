"""Opening a rebuildable SQLite cache: WAL mode, one table, and an ``info`` table whose schema
entry, when it differs from the code's, empties the table (the cache is then rebuilt on use)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["open_cache_db"]


def open_cache_db(
    path: Path,
    *,
    timeout: float,
    synchronous: str,
    table: str,
    create_sql: str,
    schema_key: str,
    schema: int,
) -> sqlite3.Connection:
    """Connect to ``path`` in autocommit WAL mode, create ``table`` (``create_sql``) and the
    ``info`` table, and empty ``table`` when ``info[schema_key]`` is not ``schema``.
    SQLite failures raise ``sqlite3.Error``."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(create_sql)
    conn.execute("CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT)")
    row = conn.execute("SELECT value FROM info WHERE key=?", (schema_key,)).fetchone()
    if row is None or row[0] != str(schema):
        conn.execute(f"DELETE FROM {table}")
        conn.execute("INSERT OR REPLACE INTO info VALUES (?, ?)", (schema_key, str(schema)))
    return conn
