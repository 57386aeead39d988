"""Fingerprints: digests, caching (touch, same-size edits, racy window), manifests, bad input."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from replicator.data import Fingerprint, FingerprintError, fingerprint, load_manifest
from replicator.data.cache import RACY_WINDOW_NS, StatCache, cache_path, is_fresh
from replicator.data.fingerprint import dir_digest
from replicator.data.hashing import _hash_path
from replicator.data.manifest import manifest_path
from replicator.errors import StoreError, UsageError


def _tree(root: Path, n: int = 5) -> Path:
    (root / "sub").mkdir(parents=True)
    for i in range(n):
        (root / f"f{i}.txt").write_bytes(f"file {i}\n".encode() * (i + 1))
    (root / "sub" / "inner.bin").write_bytes(bytes(range(256)))
    return root


def _age(path: Path, seconds: float = 100.0) -> None:
    """Move mtime into the past (ctime stays 'now': the kernel sets it)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_file_digests_match_reference_implementations(tmp_path: Path) -> None:
    import blake3

    f = tmp_path / "x.bin"
    data = os.urandom(100_000)
    f.write_bytes(data)
    store = tmp_path / "store"
    assert fingerprint(f, algo="md5", store=store).digest == hashlib.md5(data).hexdigest()
    b3 = fingerprint(f, store=store)
    assert (b3.digest, b3.algo, b3.kind, b3.size, b3.nfiles) == (
        blake3.blake3(data).hexdigest(),
        "blake3",
        "file",
        100_000,
        1,
    )
    xxhash = pytest.importorskip("xxhash")
    assert fingerprint(f, algo="xxh3", store=store).digest == xxhash.xxh3_128(data).hexdigest()


def test_large_file_mmap_and_buffer_paths_agree(tmp_path: Path) -> None:
    import blake3

    seen: list[int] = []
    f = tmp_path / "big.bin"
    data = os.urandom(9 << 20)  # above LARGE_FILE
    f.write_bytes(data)
    want = blake3.blake3(data).hexdigest()
    assert _hash_path(str(f), "blake3", allow_mmap=True)[0] == want
    assert _hash_path(str(f), "blake3", allow_mmap=False)[0] == want
    assert _hash_path(str(f), "blake3", allow_mmap=True, advance=seen.append)[0] == want
    assert sum(seen) == len(data)
    seen.clear()
    assert _hash_path(
        str(f), "xxh3" if _has("xxhash") else "md5", allow_mmap=False, advance=seen.append
    )
    assert sum(seen) == len(data) and len(seen) > 1
    assert _hash_path(str(f), "md5", allow_mmap=True)[0] == hashlib.md5(data).hexdigest()
    assert fingerprint(f, store=tmp_path / "s").digest == want


def test_dir_fingerprint_manifest_and_store_object(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "d")
    (tmp_path / "d" / "empty").mkdir()
    store = tmp_path / "store"
    fp = fingerprint(tree, store=store)
    assert fp.kind == "dir" and fp.nfiles == 6
    assert fp.digest.endswith(".dir") and fp.digest == dir_digest(fp.entries, "blake3")
    assert [e.relpath for e in fp.entries] == sorted(e.relpath for e in fp.entries)
    assert fp.size == sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    assert fp.manifest_id == f"blake3/{fp.digest}"
    obj = manifest_path(store, fp.manifest_id)
    assert obj == store / "objects" / "blake3" / fp.digest[:2] / f"{fp.digest}.json"
    assert load_manifest(store, fp.manifest_id) == fp
    # A damaged object is detected, not trusted.
    obj.write_text(obj.read_text().replace("inner.bin", "other.bin"))
    with pytest.raises(StoreError, match="does not hash to its name"):
        load_manifest(store, fp.manifest_id)


def test_cached_equals_uncached_and_warm_run_hashes_nothing(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "d", n=50)
    store = tmp_path / "store"
    for p in tree.rglob("*"):
        _age(p)
    first = fingerprint(tree, store=store)
    # ctime is 'now', so rows are racy: the second pass re-hashes everything...
    assert first.hashed_files == 51
    uncached = fingerprint(tree, store=store, use_cache=False)
    assert uncached == first and uncached.hashed_files == 51
    # ...and once the racy window has passed, the cache answers without reading files.
    time.sleep(RACY_WINDOW_NS / 1e9 + 0.1)
    fingerprint(tree, store=store)  # writes rows hashed after the window
    warm = fingerprint(tree, store=store)
    assert warm == first and warm.hashed_files == 0
    # Deleting the cache changes no result.
    os.unlink(cache_path(store))
    assert fingerprint(tree, store=store) == first


def test_touch_and_same_size_edit_with_restored_mtime(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "d")
    store = tmp_path / "store"
    target = tree / "f3.txt"
    time.sleep(RACY_WINDOW_NS / 1e9 + 0.1)
    before = fingerprint(tree, store=store)
    assert fingerprint(tree, store=store).hashed_files == 0  # rows are trusted now

    # touch: new mtime, same bytes -> re-hashed, same digest
    os.utime(target)
    touched = fingerprint(tree, store=store)
    assert touched == before and touched.hashed_files == 1

    # one byte changed, size kept, mtime restored: ctime gives it away
    st = target.stat()
    content = bytearray(target.read_bytes())
    content[0] ^= 0x01
    target.write_bytes(bytes(content))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_mtime_ns == st.st_mtime_ns and target.stat().st_size == st.st_size
    edited = fingerprint(tree, store=store)
    assert edited.digest != before.digest
    assert edited == fingerprint(tree, store=store, use_cache=False)


def test_edit_right_after_hashing_is_caught_by_racy_window(tmp_path: Path) -> None:
    """Hashed and edited within the same clock tick: stat fields can be identical."""
    f = tmp_path / "d" / "f.txt"
    f.parent.mkdir()
    f.write_bytes(b"aaaa")
    store = tmp_path / "store"
    first = fingerprint(f.parent, store=store)
    st = f.stat()
    with open(f, "r+b") as fh:
        fh.write(b"b")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fingerprint(f.parent, store=store) != first
    # The rule itself: a row whose file changed within the window before hashing is not trusted.
    now = time.time_ns()
    st = f.stat()
    row = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, "x", now)
    assert not is_fresh(row, st)
    assert is_fresh((*row[:5], max(st.st_mtime_ns, st.st_ctime_ns) + RACY_WINDOW_NS + 1), st)


def test_cache_survives_damage_as_a_note(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "d")
    store = tmp_path / "store"
    good = fingerprint(tree, store=store)
    db = cache_path(store)
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    damaged = fingerprint(tree, store=store)
    assert damaged == good
    assert any("stat cache" in n for n in damaged.notes)
    with StatCache(tmp_path / "other.sqlite") as cache:
        cache.put_many("md5", [("/x", (1, 2, 3, 4, "d", 5))])
        assert cache.get("/x", "md5") == (1, 2, 3, 4, "d", 5)


def test_process_pool_matches_serial_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The walk and hashing pipeline behind fingerprint() decides when to use worker processes.
    mod = importlib.import_module("replicator.data.hashing")

    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(600):
        (tree / f"{i:04d}.bin").write_bytes(os.urandom(8192))
    if not mod._can_fork():
        pytest.skip("another thread runs in this test process, so the worker pool is not used")
    pooled = fingerprint(tree, algo="md5", store=tmp_path / "s1", use_cache=False)
    monkeypatch.setattr(mod, "POOL_MIN_FILES", 10**9)
    serial = fingerprint(tree, algo="md5", store=tmp_path / "s2", use_cache=False)
    assert pooled == serial and pooled.nfiles == 600
    # With another Python thread alive (a training script's loader), no fork: same result.
    monkeypatch.setattr(mod, "POOL_MIN_FILES", 512)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not mod._can_fork()
        assert fingerprint(tree, algo="md5", store=tmp_path / "s3", use_cache=False) == serial
    finally:
        stop.set()
        other.join()


def test_ignored_and_skipped_entries(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "d")
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref")
    (tree / ".dvc").mkdir()
    (tree / ".dvc" / "config").write_text("x")
    (tree / "sub" / ".git").write_text("gitdir: elsewhere")
    os.symlink(tree / "sub", tree / "link-to-dir")
    os.symlink(tree / "f0.txt", tree / "link-to-file")
    os.mkfifo(tree / "pipe")
    fp = fingerprint(tree, store=tmp_path / "store")
    rels = {e.relpath for e in fp.entries}
    assert "link-to-file" in rels and not any(".git" in r or ".dvc" in r for r in rels)
    skipped = dict(fp.skipped)
    assert "symlink to a directory" in skipped["link-to-dir"]
    assert "FIFO" in skipped["pipe"]
    with pytest.raises(UsageError, match="is a FIFO, not a file or directory"):
        fingerprint(tree / "pipe", store=tmp_path / "store")


def test_store_inside_the_dataset_is_not_hashed(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "proj")
    store = tree / ".replicator"
    a = fingerprint(tree, store=store)
    b = fingerprint(tree, store=store)
    assert a == b and not any(e.relpath.startswith(".replicator") for e in a.entries)


def test_missing_path_broken_link_and_loop(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with pytest.raises(UsageError, match="no such file or directory"):
        fingerprint(tmp_path / "nope", store=store)
    with pytest.raises(UsageError, match="Unknown hash algorithm 'sha1'"):
        fingerprint(tmp_path, algo="sha1", store=store)
    tree = tmp_path / "d"
    tree.mkdir()
    os.symlink(tree / "loop", tree / "loop")
    with pytest.raises(FingerprintError, match="symlink loop"):
        fingerprint(tree, store=store)
    os.unlink(tree / "loop")
    os.symlink(tree / "gone", tree / "dangling")
    with pytest.raises(FingerprintError, match=r"Broken symlink .*dangling -> .*gone"):
        fingerprint(tree, store=store)


def test_file_changing_while_hashed_is_an_error(tmp_path: Path) -> None:
    tree = tmp_path / "d"
    tree.mkdir()
    big = tree / "growing.bin"
    big.write_bytes(os.urandom(32 << 20))
    stop = threading.Event()

    def writer() -> None:
        fd = os.open(big, os.O_WRONLY)
        try:
            i = 0
            while not stop.is_set():
                os.pwrite(fd, os.urandom(16), (i * 4096) % (32 << 20))
                i += 1
                time.sleep(0.0005)
        finally:
            os.close(fd)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.05)
        with pytest.raises(FingerprintError, match="changed while it was being hashed"):
            fingerprint(tree, algo="md5", store=tmp_path / "store")
    finally:
        stop.set()
        thread.join()


def _unprivileged(cmd: list[str]) -> list[str]:
    """Run as root without the capabilities that let root read 0o000 files."""
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *cmd]


def test_permission_denied(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "d")
    secret = tree / "sub" / "inner.bin"
    secret.chmod(0)
    try:
        if os.geteuid() != 0:
            with pytest.raises(FingerprintError, match=r"Permission denied.*inner\.bin"):
                fingerprint(tree, store=tmp_path / "store")
            return
        # Root reads 0o000 files; drop CAP_DAC_OVERRIDE in a real subprocess instead.
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv is missing: cannot make a file unreadable")
        env = {**os.environ, "REPLICATOR_STORE": str(tmp_path / "store")}
        proc = subprocess.run(
            _unprivileged([sys.executable, "-m", "replicator", "data", "fingerprint", str(tree)]),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 1, proc.stderr
        assert "Permission denied: cannot read" in proc.stderr and "inner.bin" in proc.stderr
        assert "chmod u+r" in proc.stderr
        # An unreadable directory is refused the same way, not skipped.
        secret.chmod(0o644)
        (tree / "sub").chmod(0)
        proc = subprocess.run(
            _unprivileged([sys.executable, "-m", "replicator", "data", "fingerprint", str(tree)]),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 1, proc.stderr
        assert "Permission denied: cannot list the directory" in proc.stderr
    finally:
        (tree / "sub").chmod(0o755)
        secret.chmod(0o644)


def test_fingerprint_equality_ignores_how_it_was_made() -> None:
    a = Fingerprint("d.dir", "md5", 1, 1, "dir", (), hashed_files=1, notes=("x",))
    b = Fingerprint("d.dir", "md5", 1, 1, "dir", (), hashed_files=0)
    assert a == b and str(a) == "md5:d.dir"


def test_names_that_are_not_utf8_are_hashed_but_not_cached(tmp_path: Path) -> None:
    tree = tmp_path / "d"
    tree.mkdir()
    raw = os.fsencode(tree) + b"/bad\xff\xfename"
    with open(raw, "wb") as f:
        f.write(b"x")
    store = tmp_path / "store"
    fp = fingerprint(tree, algo="md5", store=store)
    assert fp.entries[0].relpath == "bad\udcff\udcfename" and not fp.notes
    assert load_manifest(store, fp.manifest_id) == fp
    assert fingerprint(tree, algo="md5", store=store) == fp


def test_concurrent_fingerprints_share_one_store(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "d", n=300)
    env = {**os.environ, "REPLICATOR_STORE": str(tmp_path / "store")}
    cmd = [sys.executable, "-m", "replicator", "data", "fingerprint", str(tree), "--json"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    import json

    digests = {json.loads(out)["digest"] for out, _ in outs}
    assert digests == {fingerprint(tree, store=tmp_path / "store").digest}


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("algo", ["md5", "blake3", "xxh3"])
def test_dir_digest_bytes_are_json_dumps_sort_keys(algo: str) -> None:
    import json

    from replicator.data import ManifestEntry
    from replicator.data.fingerprint import hash_bytes

    if algo == "xxh3":
        pytest.importorskip("xxhash")
    entries = [
        ManifestEntry("a-b/x", 1, "00ff"),
        ManifestEntry('a/"quoted" \\ back', 2, "11"),
        ManifestEntry("ünï/日本\udcff", 3, "22"),
    ]
    listing = [{algo: e.digest, "relpath": e.relpath} for e in entries]
    want = hash_bytes(json.dumps(listing, sort_keys=True).encode(), algo) + ".dir"
    assert dir_digest(entries, algo) == want
    assert dir_digest([], algo) == hash_bytes(b"[]", algo) + ".dir"
