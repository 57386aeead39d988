"""The stat cache: digests remembered per store, so unchanged trees re-fingerprint at stat speed.

One SQLite file in WAL mode, ``<store>/cache/fingerprints.sqlite``, holds a row per (absolute
path, algorithm) with the file's inode, size, ``mtime_ns`` and ``ctime_ns`` at the moment it was
hashed, the digest, and when it was hashed. A row is trusted only if all four stat fields still
match *and* the file was not modified within :data:`RACY_WINDOW_NS` of being hashed.

Why ``ctime_ns``: restoring a file's mtime with ``os.utime`` after editing it (same size) fools a
size+mtime cache, but the kernel sets ctime to "now" on every write and every ``utime``, and no
ordinary call can set it back. Why the racy window (git's "racily clean" rule): file timestamps
have coarse granularity (a kernel tick, 1-4 ms, or 1-2 s on some filesystems), so a file changed
again in the same tick it was hashed keeps identical stat fields. Rows of files modified within
the window before hashing are therefore never trusted; the next fingerprint re-hashes them and
writes a row that is.

Beside the rows per file, one row per (directory tree, algorithm) remembers the whole answer of
the last fingerprint of that tree: a signature of its listing (every relpath with the four stat
fields, :func:`tree_signature`), the ``.dir`` digest and the manifest entries. When a walk yields
the same signature, the answer is read back in one query instead of 20,000 rows being loaded and
compared one by one. A tree row is written only when no file of the tree was modified within
the racy window of the fingerprint, so a matching signature is as trustworthy as matching rows.

The cache only ever saves work: deleting the file (at any time, even during a fingerprint) changes
no result. Any SQLite problem (locked database on a network filesystem, damaged file) turns the
cache off for that call and is reported as a note, never as an error.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .._util.sqlite import open_cache_db

__all__ = ["RACY_WINDOW_NS", "CacheRow", "StatCache", "cache_path", "tree_signature"]

# Git uses the index file's own mtime; we use a fixed window that covers coarse (2 s) timestamps.
RACY_WINDOW_NS = 2_000_000_000
_SCHEMA = 1

# (inode, size, mtime_ns, ctime_ns, digest, hashed_ns)
CacheRow = tuple[int, int, int, int, str, int]
# (relpath, inode, size, mtime_ns, ctime_ns): one file of a tree as the walk saw it
ListingRow = tuple[str, int, int, int, int]
# (relpath, size, digest): one manifest entry
EntryRow = tuple[str, int, str]
_TREES_SQL = (
    "CREATE TABLE IF NOT EXISTS trees (root TEXT NOT NULL, algo TEXT NOT NULL, "
    "signature TEXT NOT NULL, digest TEXT NOT NULL, entries BLOB NOT NULL, "
    "PRIMARY KEY (root, algo)) WITHOUT ROWID"
)


def tree_signature(listing: Sequence[ListingRow]) -> str | None:
    """A digest of a tree's listing (relpaths and stat fields, in walk order); None if a name
    cannot be serialised (such trees are simply not cached as a whole)."""
    try:  # marshal version 2: no reference tracking, 20x faster to write than version 4
        blob = marshal.dumps(list(listing), 2)
    except ValueError:
        return None
    return hashlib.blake2b(blob, digest_size=20).hexdigest()


def newest_change_ns(listing: Sequence[ListingRow]) -> int:
    """The latest mtime or ctime in a listing (0 for an empty one)."""
    return max((max(r[3], r[4]) for r in listing), default=0)


def cache_path(store_root: str | os.PathLike[str]) -> Path:
    """Where a store keeps its fingerprint cache."""
    return Path(store_root) / "cache" / "fingerprints.sqlite"


def is_fresh(row: CacheRow, st: os.stat_result, *, racy_window_ns: int | None = None) -> bool:
    """Whether a cached row still describes the file whose current stat is ``st``."""
    inode, size, mtime_ns, ctime_ns, _digest, hashed_ns = row
    if (inode, size, mtime_ns, ctime_ns) != (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):
        return False
    window = RACY_WINDOW_NS if racy_window_ns is None else racy_window_ns
    # Modified too close to the hash: a later same-tick change would leave the stat identical.
    return max(mtime_ns, ctime_ns) < hashed_ns - window


class StatCache:
    """A connection to one store's fingerprint cache; every method degrades to a no-op on error."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        self._conn: sqlite3.Connection | None = None
        self._broken = False

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is not None or self._broken:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The cache is rebuildable: losing the last transactions on power loss is harmless.
            conn = open_cache_db(
                self.path,
                timeout=10.0,
                synchronous="OFF",
                table="files",
                create_sql=(
                    "CREATE TABLE IF NOT EXISTS files (path TEXT NOT NULL, algo TEXT NOT NULL, "
                    "inode INTEGER, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, "
                    "digest TEXT NOT NULL, hashed_ns INTEGER, PRIMARY KEY (path, algo)) "
                    "WITHOUT ROWID"
                ),
                schema_key="schema",
                schema=_SCHEMA,
            )
            conn.execute(_TREES_SQL)
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
            return None
        self._conn = conn
        return conn

    def _fail(self, exc: BaseException) -> None:
        self._broken = True
        self.notes.append(f"stat cache {self.path} not used ({exc}); every file was hashed")
        self.close()

    def get(self, path: str, algo: str) -> CacheRow | None:
        """The row for one file, or None."""
        conn = self._connect()
        if conn is None or not _encodable(path):
            return None
        try:
            row = conn.execute(
                "SELECT inode, size, mtime_ns, ctime_ns, digest, hashed_ns FROM files "
                "WHERE path = ? AND algo = ?",
                (path, algo),
            ).fetchone()
        except (sqlite3.Error, UnicodeError) as exc:
            self._fail(exc)
            return None
        return tuple(row) if row else None

    def load_tree(self, root: str, algo: str) -> dict[str, CacheRow]:
        """Every row under directory ``root`` (absolute, no trailing slash), keyed by path.

        One range query instead of one query per file: this is what makes a warm
        re-fingerprint of 20,000 files cost little more than the stat calls.
        """
        conn = self._connect()
        if conn is None:
            return {}
        lo = root.rstrip("/") + "/"
        hi = root.rstrip("/") + "0"  # '0' sorts right after '/'
        try:
            rows = conn.execute(
                "SELECT path, inode, size, mtime_ns, ctime_ns, digest, hashed_ns FROM files "
                "WHERE algo = ? AND path >= ? AND path < ?",
                (algo, lo, hi),
            ).fetchall()
        except (sqlite3.Error, UnicodeError) as exc:
            self._fail(exc)
            return {}
        return {r[0]: tuple(r[1:]) for r in rows}

    def get_tree(self, root: str, algo: str, signature: str) -> tuple[str, list[EntryRow]] | None:
        """(digest, entries) of tree ``root`` if its last fingerprint had this ``signature``."""
        conn = self._connect()
        if conn is None or not _encodable(root):
            return None
        try:
            row = conn.execute(
                "SELECT digest, entries FROM trees WHERE root = ? AND algo = ? AND signature = ?",
                (root, algo, signature),
            ).fetchone()
        except sqlite3.Error as exc:
            self._fail(exc)
            return None
        if row is None:
            return None
        try:
            entries = marshal.loads(row[1])
        except (ValueError, EOFError, TypeError):  # a damaged row: a miss, rewritten later
            return None
        return (row[0], entries) if isinstance(entries, list) else None

    def put_many(
        self,
        algo: str,
        rows: Iterable[tuple[str, CacheRow]],
        *,
        forget: Iterable[str] = (),
        tree: tuple[str, str, str, Sequence[EntryRow]] | None = None,
    ) -> None:
        """Store ``(path, row)`` pairs, delete ``forget`` paths and store ``tree`` (root,
        signature, digest, entries), in one transaction."""
        # Names that are not valid UTF-8 (surrogate escapes) cannot be stored: never cached.
        rows = [(p, r) for p, r in rows if _encodable(p)]
        forget = [p for p in forget if _encodable(p)]
        tree_row = None
        if tree is not None and _encodable(tree[0]):
            try:  # plain tuples: marshal refuses tuple subclasses such as ManifestEntry
                blob = marshal.dumps([tuple(e) for e in tree[3]], 2)
            except ValueError:
                blob = None
            tree_row = None if blob is None else (tree[0], algo, tree[1], tree[2], blob)
        if not rows and not forget and tree_row is None:
            return
        conn = self._connect()
        if conn is None:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(p, algo, *r) for p, r in rows],
            )
            conn.executemany(
                "DELETE FROM files WHERE path = ? AND algo = ?", [(p, algo) for p in forget]
            )
            if tree_row is not None:
                conn.execute("INSERT OR REPLACE INTO trees VALUES (?, ?, ?, ?, ?)", tree_row)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._fail(exc)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def __enter__(self) -> StatCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encodable(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def now_ns() -> int:
    """Wall-clock nanoseconds, the clock file timestamps are compared with."""
    return time.time_ns()
