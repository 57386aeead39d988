"""Byte-for-byte agreement with the real dvc package (``dvc add``) and dvc-data's legacy hashing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from replicator.data import fingerprint, legacy_md5, verify

pytest.importorskip("dvc")


def _make_tree(root: Path) -> None:
    """CRLF text, binary, nested and empty dirs, non-ASCII names, and 'a-b/' next to 'a/'."""
    (root / "a").mkdir(parents=True)
    (root / "a-b").mkdir()
    (root / "a.b").mkdir()
    (root / "empty" / "deeper").mkdir(parents=True)
    (root / "nested" / "x" / "y").mkdir(parents=True)
    (root / "a" / "crlf.txt").write_bytes(b"line one\r\nline two\r\n" * 40)
    (root / "a" / "lf.txt").write_bytes(b"line one\nline two\n" * 40)
    (root / "a-b" / "data.bin").write_bytes(bytes(range(256)) * 33 + b"\x00\r\n")
    (root / "a.b" / "z").write_bytes(b"dot")
    (root / "a0").write_bytes(b"a zero")
    (root / "nested" / "x" / "y" / "deep.csv").write_bytes(b"x,y\r\n1,2\r\n")
    (root / "nested" / "empty.txt").write_bytes(b"")
    (root / "données ünï 日本.txt").write_bytes("café\r\n".encode())
    (root / "Ω").mkdir()
    (root / "Ω" / "é.bin").write_bytes(os.urandom(5000))


def _dvc(repo: Path, *args: str) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(repo / ".site")}
    subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )


def _out(dvcfile: Path) -> dict:
    import yaml

    return yaml.safe_load(dvcfile.read_text(encoding="utf-8"))["outs"][0]


def test_dir_and_file_digests_equal_dvc_add(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _make_tree(repo / "tree")
    (repo / "single.bin").write_bytes(b"\r\n\x00binary\r\n" * 100)
    _dvc(repo, "init", "--no-scm", "-q")
    _dvc(repo, "add", "-q", "tree", "single.bin")
    store = tmp_path / "store"

    expected = _out(repo / "tree.dvc")
    fp = fingerprint(repo / "tree", algo="md5", store=store)
    assert expected["hash"] == "md5"
    assert fp.digest == expected["md5"]
    assert (fp.size, fp.nfiles) == (expected["size"], expected["nfiles"])

    # Every file digest and the entry order equal DVC's .dir listing in its cache.
    md5 = expected["md5"]
    listing = json.loads((repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).read_text())
    assert [(d["relpath"], d["md5"]) for d in listing] == [
        (e.relpath, e.digest) for e in fp.entries
    ]
    relpaths = [e.relpath for e in fp.entries]
    assert relpaths.index("a-b/data.bin") < relpaths.index("a/crlf.txt")  # '-' sorts before '/'

    single = _out(repo / "single.bin.dvc")
    fs = fingerprint(repo / "single.bin", algo="md5", store=store)
    assert (fs.digest, fs.size) == (single["md5"], single["size"])

    # A cached second pass and the CLI-level verify agree too.
    assert fingerprint(repo / "tree", algo="md5", store=store) == fp
    report = verify(against=repo / "tree.dvc", store=store)
    assert report.ok and [c.status for c in report.checks] == ["match"]


def test_legacy_md5_dos2unix_equals_dvc_data(tmp_path: Path) -> None:
    from dvc_data.hashfile.hash import file_md5

    cases = {
        "crlf.txt": b"a\r\nb\r\n" * 1000,
        "binary.bin": b"\x00\r\n" * 1000,
        "mostly-binary.bin": bytes(range(128, 256)) * 4 + b"\r\n",
        "empty.txt": b"",
        "utf8.txt": "naïve\r\ncafé\r\n".encode(),
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        ours = legacy_md5(tmp_path / name)
        theirs = file_md5(str(tmp_path / name), name="md5-dos2unix")
        assert ours == theirs, name
    assert (
        legacy_md5(tmp_path / "crlf.txt") == __import__("hashlib").md5(b"a\nb\n" * 1000).hexdigest()
    )


def test_verify_legacy_dvc2_entries(tmp_path: Path) -> None:
    """A DVC 2 style .dvc file (no 'hash:' key) is checked with md5-dos2unix, dir and file."""
    from dvc_data.hashfile.hash import file_md5

    tree = tmp_path / "tree"
    _make_tree(tree)
    entries = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        rel = path.relative_to(tree).as_posix()
        entries.append({"md5": file_md5(str(path), name="md5-dos2unix"), "relpath": rel})
    entries.sort(key=lambda e: e["relpath"])
    import hashlib

    dir_md5 = hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"
    (tmp_path / "tree.dvc").write_text(f"outs:\n- md5: {dir_md5}\n  path: tree\n")
    report = verify(against=tmp_path / "tree.dvc", store=tmp_path / "store")
    assert report.ok, report.as_dict()
    assert report.checks[0].algo == "md5-dos2unix"

    # The DVC 3 md5 of the same tree differs (CRLF files), so the legacy path really was taken.
    assert fingerprint(tree, algo="md5", store=tmp_path / "store").digest != dir_md5
