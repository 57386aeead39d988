"""The stat cache's row per tree: an unchanged tree is answered in one query, any change is seen."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from replicator.data import fingerprint
from replicator.data.cache import RACY_WINDOW_NS, cache_path


def _trees(store: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(cache_path(store)) as conn:
        return conn.execute("SELECT root, algo FROM trees").fetchall()


def _settled_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A tree whose files are past the racy window, fingerprinted once after it (a tree row)."""
    tree = tmp_path / "d"
    (tree / "sub").mkdir(parents=True)
    for i in range(30):
        (tree / f"f{i:02d}.txt").write_bytes(f"file {i}\n".encode() * (i + 1))
    (tree / "sub" / "inner.bin").write_bytes(bytes(range(256)))
    store = tmp_path / "store"
    fingerprint(tree, algo="md5", store=store)
    assert _trees(store) == []  # files written just now are racily new: no row for the tree
    time.sleep(RACY_WINDOW_NS / 1e9 + 0.1)
    fingerprint(tree, algo="md5", store=store)
    assert _trees(store) == [(str(tree.resolve()), "md5")]
    return tree, store


def test_unchanged_tree_is_answered_by_its_row_and_every_change_is_seen(tmp_path: Path) -> None:
    tree, store = _settled_tree(tmp_path)
    truth = fingerprint(tree, algo="md5", store=tmp_path / "other", use_cache=False)
    # Without any row per file, only the tree's row can answer without reading the files.
    with sqlite3.connect(cache_path(store)) as conn:
        conn.execute("DELETE FROM files")
    warm = fingerprint(tree, algo="md5", store=store)
    assert warm == truth and warm.hashed_files == 0
    assert warm.manifest_id == truth.manifest_id and warm.size == truth.size

    def check() -> None:
        fresh = fingerprint(tree, algo="md5", store=tmp_path / "other", use_cache=False)
        assert fingerprint(tree, algo="md5", store=store) == fresh

    # one byte changed, size and mtime kept: the ctime gives it away
    target = tree / "f07.txt"
    st = target.stat()
    content = bytearray(target.read_bytes())
    content[0] ^= 0x01
    target.write_bytes(bytes(content))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    check()
    (tree / "f03.txt").rename(tree / "sub" / "f03.txt")  # renamed: same bytes, new relpath
    check()
    (tree / "f11.txt").unlink()
    check()
    (tree / "new.txt").write_bytes(b"new")
    check()
    assert fingerprint(tree, algo="md5", store=store) != truth


def test_damaged_tree_row_is_a_miss_not_a_wrong_answer(tmp_path: Path) -> None:
    tree, store = _settled_tree(tmp_path)
    good = fingerprint(tree, algo="md5", store=store)
    with sqlite3.connect(cache_path(store)) as conn:
        conn.execute("UPDATE trees SET entries = x'00ff'")
    again = fingerprint(tree, algo="md5", store=store)
    assert again == good and not again.notes
    # The other algorithm has a row of its own: a blake3 fingerprint is not answered by md5's.
    assert fingerprint(tree, store=store).digest != good.digest
