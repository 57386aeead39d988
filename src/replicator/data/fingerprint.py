"""Fingerprints of files and directory trees: digest, size, file count and a manifest.

A directory's fingerprint follows DVC 3 exactly, generalised to other algorithms: every regular
file is hashed, the entries ``{"<algo>": <hex>, "relpath": <posix path>}`` are sorted by
``relpath`` as Python strings, serialised with ``json.dumps(entries, sort_keys=True)`` and hashed
with the same algorithm; the digest gets the suffix ``.dir``. With ``algo="md5"`` the result is
byte for byte DVC's ``.dir`` md5 (and a file's digest its DVC md5), so it compares directly with a
``.dvc`` file or ``dvc.lock``. BLAKE3 is the default because it is 8-10x faster.

What is walked (as DVC does): regular files and symlinks to regular files. Not followed: symlinks
to directories (listed in ``skipped``). Ignored: directories named ``.git``, ``.hg`` and ``.dvc``,
files named ``.git``, and the replicator store if it lies inside the tree. Empty directories
contribute nothing. FIFOs, sockets and devices are skipped and listed in ``skipped`` (reading a
FIFO would block forever). Broken symlinks, symlink loops, unreadable files and files that change
while being hashed raise :class:`FingerprintError` — never a silently wrong digest.

Speed: one ``scandir`` walk with one ``stat`` per file; files whose stat matches the store's
stat cache (:mod:`replicator.data.cache`) are not read at all. Files to hash are split by size:
large ones are hashed one at a time, BLAKE3 through a memory map with all cores, md5/xxh3 through
one reused buffer; many small ones go to worker processes, a few to a plain loop (threads are
slower than a loop for small cached files).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import MissingDependencyError, ReplicatorError, UsageError

if TYPE_CHECKING:
    from .._util.progress import Progress
    from ..store.store import Store

__all__ = [
    "ALGORITHMS",
    "Fingerprint",
    "FingerprintError",
    "ManifestEntry",
    "dir_digest",
    "fingerprint",
    "hash_bytes",
]

ALGORITHMS = ("blake3", "md5", "xxh3")
IGNORED_DIRS = frozenset({".git", ".hg", ".dvc"})
IGNORED_FILES = frozenset({".git"})
# Files at least this big are hashed one at a time (BLAKE3: mmap + all cores).
LARGE_FILE = 8 << 20
BUFFER_SIZE = 8 << 20
# Below this many files to hash, starting worker processes costs more than it saves.
POOL_MIN_FILES = 512
POOL_MIN_BYTES = 4 << 20
POOL_WORKERS: int | None = None  # default: two per CPU, at most 8


class FingerprintError(ReplicatorError):
    """A file could not be hashed reliably (unreadable, changing, a broken or looping link)."""


class ManifestEntry(NamedTuple):
    """One file of a fingerprint: path relative to the root (posix), size in bytes, digest."""

    relpath: str
    size: int
    digest: str


@dataclass(frozen=True)
class Fingerprint:
    """The fingerprint of a file or directory tree.

    Equality compares what the data is (digest, algorithm, sizes, manifest), not how it was
    obtained: a cached and an uncached fingerprint of the same tree are equal.
    """

    digest: str
    algo: str
    size: int
    nfiles: int
    kind: str  # "file" or "dir"
    entries: tuple[ManifestEntry, ...]
    path: Path | None = field(default=None, compare=False)
    manifest_id: str | None = field(default=None, compare=False)
    skipped: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    hashed_files: int = field(default=0, compare=False)
    hashed_bytes: int = field(default=0, compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.algo}:{self.digest}"

    def as_dict(self, *, with_entries: bool = False) -> dict[str, Any]:
        """A JSON-ready view (the CLI's ``--json``)."""
        out: dict[str, Any] = {
            "path": str(self.path) if self.path else None,
            "kind": self.kind,
            "algo": self.algo,
            "digest": self.digest,
            "size": self.size,
            "nfiles": self.nfiles,
            "manifest": self.manifest_id,
            "skipped": [{"relpath": r, "reason": why} for r, why in self.skipped],
            "hashed_files": self.hashed_files,
            "hashed_bytes": self.hashed_bytes,
            "notes": list(self.notes),
        }
        if with_entries:
            out["entries"] = [list(e) for e in self.entries]
        return out


# --------------------------------------------------------------------------- hashing primitives
def _hasher(algo: str) -> Any:
    if algo == "md5":
        return hashlib.md5(usedforsecurity=False)
    if algo == "blake3":
        from blake3 import blake3

        return blake3()
    if algo == "xxh3":
        try:
            import xxhash
        except ImportError as exc:
            raise MissingDependencyError("xxhash", "xxhash", purpose="--algo xxh3") from exc
        return xxhash.xxh3_128()
    raise UsageError(f"Unknown hash algorithm '{algo}'; choose one of {', '.join(ALGORITHMS)}.")


def hash_bytes(data: bytes, algo: str) -> str:
    """Hex digest of ``data`` with ``algo``."""
    h = _hasher(algo)
    h.update(data)
    return str(h.hexdigest())


def dir_digest(entries: list[ManifestEntry] | tuple[ManifestEntry, ...], algo: str) -> str:
    """DVC's ``.dir`` digest of sorted entries, for any algorithm (md5 gives DVC's exactly).

    The bytes are those of ``json.dumps([{algo: digest, "relpath": relpath}, ...],
    sort_keys=True)``, written directly with json's own string encoder (twice as fast).
    """
    from json.encoder import encode_basestring_ascii as enc

    if algo < "relpath":  # sort_keys order of the two keys
        parts = [f'{{"{algo}": {enc(e.digest)}, "relpath": {enc(e.relpath)}}}' for e in entries]
    else:
        parts = [f'{{"relpath": {enc(e.relpath)}, "{algo}": {enc(e.digest)}}}' for e in entries]
    return hash_bytes(("[" + ", ".join(parts) + "]").encode("utf-8"), algo) + ".dir"


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def _hash_path(
    path: str, algo: str, *, allow_mmap: bool, advance: Callable[[int], None] | None = None
) -> tuple[str, os.stat_result]:
    """Hash one file; return the digest and the stat the digest belongs to.

    The file is stat'ed on the open descriptor before and after reading: a difference, or a byte
    count other than the size, means something wrote to it meanwhile (raises ``_Changed``).
    ``advance`` is called with byte counts as they are hashed (per 8 MiB for large files).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise _Special(path)
        h = _hasher(algo)
        if before.st_size < LARGE_FILE:
            data = os.read(fd, before.st_size + 1)
            h.update(data)
            done = len(data)
            if advance is not None:
                advance(done)
        elif algo == "blake3":
            h = type(h)(max_threads=type(h).AUTO)
            if allow_mmap:
                # A memory map of a file that is truncated meanwhile raises SIGBUS; callers
                # allow it only for files not modified recently (see _hash_one).
                try:
                    done = _hash_mapped(fd, path, before.st_size, h, advance)
                except ValueError:  # "cannot mmap an empty file": truncated since fstat
                    raise _Changed(path) from None
            else:
                done = _read_into(fd, h, advance)
        else:
            done = _read_into(fd, h, advance)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if done != before.st_size or not _same(before, after):
        raise _Changed(path)
    return str(h.hexdigest()), before


def _hash_mapped(
    fd: int, path: str, size: int, h: Any, advance: Callable[[int], None] | None
) -> int:
    """BLAKE3 over a memory map on all cores; in 64 MiB slices when progress is wanted."""
    if advance is None:
        h.update_mmap(path)  # the blake3 package's own fastest path
        return size
    import mmap

    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            for offset in range(0, len(mapped), 64 << 20):
                part = view[offset : offset + (64 << 20)]
                h.update(part)
                advance(len(part))
                part.release()
        finally:
            view.release()
        return len(mapped)


def _read_into(fd: int, h: Any, advance: Callable[[int], None] | None = None) -> int:
    """Feed a file to ``h`` through three reused buffers; returns the byte count.

    A reader thread fills one buffer while ``h`` hashes another: both ``readv`` and the
    hashers release the GIL, so reading overlaps hashing (BLAKE3 without mmap: ~1.5x).
    """
    import queue

    free: queue.Queue[bytearray | None] = queue.Queue()
    full: queue.Queue[tuple[bytearray, int] | BaseException] = queue.Queue()
    for _ in range(3):
        free.put(bytearray(BUFFER_SIZE))

    def reader() -> None:
        try:
            while True:
                buf = free.get()
                if buf is None:  # the hashing side gave up
                    return
                n = os.readv(fd, [buf])
                full.put((buf, n))
                if not n:
                    return
        except BaseException as exc:  # handed to the hashing thread, which re-raises it
            full.put(exc)

    thread = threading.Thread(target=reader, name="replicator-read", daemon=True)
    thread.start()
    total = 0
    finished = False
    try:
        while True:
            item = full.get()
            if isinstance(item, BaseException):
                raise item
            buf, n = item
            if not n:
                finished = True
                break
            h.update(memoryview(buf)[:n])
            total += n
            free.put(buf)
            if advance is not None:
                advance(n)
    finally:
        if not finished:
            free.put(None)
        thread.join()
    return total


class _Changed(Exception):
    pass


class _Special(Exception):
    pass


def _hash_batch(items: list[str], algo: str) -> list[tuple[Any, ...]]:
    """Worker-process entry: hash small files, reporting failures as values, not exceptions."""
    out: list[tuple[Any, ...]] = []
    for path in items:
        try:
            digest, st = _hash_path(path, algo, allow_mmap=False)
        except _Changed:
            out.append(("changed",))
        except _Special:
            out.append(("special",))
        except OSError as exc:
            out.append(("oserror", exc.errno, exc.strerror, exc.filename))
        else:
            out.append(("ok", digest, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return out


# --------------------------------------------------------------------------- the walk
class _File(NamedTuple):
    relpath: str
    abspath: str
    st: os.stat_result


def _walk(root: str, *, exclude: str | None) -> tuple[list[_File], list[tuple[str, str]]]:
    """Every file under ``root`` with one stat each, plus what was skipped and why."""
    files: list[_File] = []
    skipped: list[tuple[str, str]] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as exc:
            raise _os_error(exc, folder, "list the directory") from exc
        with it:
            for entry in it:
                name = entry.name
                rel = prefix + name
                if entry.is_dir(follow_symlinks=False):
                    if name in IGNORED_DIRS or entry.path == exclude:
                        continue
                    stack.append((entry.path, rel + "/"))
                    continue
                if name in IGNORED_FILES:
                    continue
                try:
                    st = os.stat(entry.path) if entry.is_symlink() else entry.stat()
                except OSError as exc:
                    raise _os_error(exc, entry.path, "stat") from exc
                if stat.S_ISREG(st.st_mode):
                    files.append(_File(rel, entry.path, st))
                elif stat.S_ISDIR(st.st_mode):
                    skipped.append((rel, "symlink to a directory (not followed, as in DVC)"))
                else:
                    skipped.append((rel, f"special file ({_kind(st.st_mode)}), not hashed"))
    return files, skipped


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "unknown type"


def _os_error(exc: OSError, path: str, action: str) -> ReplicatorError:
    if exc.errno == errno.ELOOP:
        return FingerprintError(
            f"Cannot {action} {path}: symlink loop. Remove or fix the link, then run again."
        )
    if exc.errno == errno.ENOENT and os.path.islink(path):
        target = os.readlink(path)
        return FingerprintError(
            f"Broken symlink {path} -> {target}. Remove it or restore its target, then run again."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FingerprintError(
            f"Permission denied: cannot {action} {path}. Make it readable "
            "(chmod u+r) or move it out of the dataset."
        )
    if exc.errno == errno.ENOENT:
        return FingerprintError(
            f"{path} disappeared while the dataset was being read; run again once it is stable."
        )
    return FingerprintError(f"Cannot {action} {path}: {exc.strerror or exc}.")


def _changed_error(path: str) -> FingerprintError:
    return FingerprintError(
        f"{path} changed while it was being hashed. Wait until whatever writes it has "
        "finished, then run again."
    )


# --------------------------------------------------------------------------- hashing plan
def _hash_one(
    f: _File, algo: str, now: int, advance: Callable[[int], None] | None = None
) -> tuple[str, os.stat_result]:
    """Hash a file in this process, retrying once if it changed under us."""
    # A file modified within the last few seconds may still be being written: don't map it.
    recent = max(f.st.st_mtime_ns, f.st.st_ctime_ns) > now - 5_000_000_000
    for attempt in range(2):
        try:
            return _hash_path(f.abspath, algo, allow_mmap=not recent, advance=advance)
        except _Changed:
            if attempt:
                raise _changed_error(f.abspath) from None
        except _Special:
            raise FingerprintError(f"{f.abspath} stopped being a regular file.") from None
        except OSError as exc:
            raise _os_error(exc, f.abspath, "read") from exc
    raise AssertionError("unreachable")


def _can_fork() -> bool:
    """Whether worker processes can be forked safely from here.

    Only ``fork`` is used: ``spawn`` and ``forkserver`` re-import the parent's ``__main__`` in
    each worker, which would re-run a training script that lacks an ``if __name__ ==
    "__main__"`` guard. Forking is safe only while no other Python thread could hold a lock
    the child needs; otherwise the files are hashed in this process.
    """
    import multiprocessing as mp

    return "fork" in mp.get_all_start_methods() and threading.active_count() == 1


def _hash_many(
    todo: list[_File], algo: str, now: int, progress: Progress
) -> dict[str, tuple[str, os.stat_result | tuple[int, int, int, int]]]:
    """Digest and stat per relpath for every file in ``todo``, by the cheapest strategy."""
    results: dict[str, Any] = {}
    small = [f for f in todo if f.st.st_size < LARGE_FILE]
    large = [f for f in todo if f.st.st_size >= LARGE_FILE]
    cpus = os.cpu_count() or 1
    small_bytes = sum(f.st.st_size for f in small)
    # Small files first: hashing large ones with BLAKE3 starts its native thread pool.
    if cpus > 1 and len(small) >= POOL_MIN_FILES and small_bytes >= POOL_MIN_BYTES and _can_fork():
        _hash_in_pool(small, algo, now, cpus, progress, results)
    for f in small + large:
        if f.relpath not in results:  # all of them, unless the pool did the small ones
            results[f.relpath] = _hash_one(f, algo, now, _advance(progress))
    return results


def _advance(progress: Progress) -> Callable[[int], None] | None:
    """None when nobody watches, so large files take the fastest path (one mmap call)."""
    from .._util.progress import NullProgress

    return None if isinstance(progress, NullProgress) else progress.advance


def _hash_in_pool(
    small: list[_File], algo: str, now: int, cpus: int, progress: Progress, results: dict[str, Any]
) -> None:
    """Hash small files in forked worker processes; on a pool failure the caller does the rest."""
    import multiprocessing as mp
    import warnings
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # Twice the CPUs: cold small files wait on I/O, and more requests in flight help there.
    workers = POOL_WORKERS or min(2 * cpus, 8)
    chunk = max(64, min(1024, len(small) // (workers * 8) or 1))
    batches = [small[i : i + chunk] for i in range(0, len(small), chunk)]
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns about forking with native threads (BLAKE3's pool, BLAS);
            # the children only run plain hashing code, which never touches those threads.
            warnings.filterwarnings(
                "ignore", message=".*multi-threaded.*", category=DeprecationWarning
            )
            with ProcessPoolExecutor(
                max_workers=workers, mp_context=mp.get_context("fork")
            ) as pool:
                futures = [pool.submit(_hash_batch, [f.abspath for f in b], algo) for b in batches]
                for batch, future in zip(batches, futures):
                    _collect(batch, future.result(), algo, now, progress, results)
    except (BrokenProcessPool, OSError):
        # No semaphores (/dev/shm), a worker killed by the OOM killer...: finish serially.
        return


def _collect(
    batch: list[_File],
    answers: list[tuple[Any, ...]],
    algo: str,
    now: int,
    progress: Progress,
    results: dict[str, Any],
) -> None:
    for f, res in zip(batch, answers):
        if res[0] == "ok":
            results[f.relpath] = (res[1], res[2:])
            progress.advance(res[3])
        elif res[0] == "oserror":
            raise _os_error(OSError(res[1], res[2], res[3]), f.abspath, "read")
        else:  # changed or special: one more careful try here
            results[f.relpath] = _hash_one(f, algo, now, _advance(progress))


def _stat_key(st: os.stat_result | tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    if isinstance(st, os.stat_result):  # a structseq, itself a tuple: test it first
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return st


# --------------------------------------------------------------------------- the public function
def fingerprint(
    path: str | os.PathLike[str],
    *,
    algo: str = "blake3",
    store: Store | str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    keep_manifest: bool = True,
    progress: Progress | None = None,
) -> Fingerprint:
    """Fingerprint a file or directory tree.

    ``store`` (default: the store of the working directory, :meth:`Store.open`) holds the stat
    cache and, for directories, the manifest, saved content-addressed under
    ``objects/<algo>/<digest[:2]>/<digest>.json`` (see :mod:`replicator.data.manifest`).
    ``use_cache=False`` hashes every file (and still refreshes the cache). ``progress``
    receives the byte total and increments (see :mod:`replicator._util.progress`).

    Example::

        fp = fingerprint("data/")             # blake3, cached
        fp.digest, fp.size, fp.nfiles          # 'e3b0...dir', 81920000, 20000
        fingerprint("data/", algo="md5").digest   # equals the md5 in data.dvc
    """
    from .._util.progress import NullProgress
    from .cache import StatCache, cache_path, is_fresh, now_ns

    if algo not in ALGORITHMS:
        raise UsageError(f"Unknown hash algorithm '{algo}'; choose one of {', '.join(ALGORITHMS)}.")
    _hasher(algo)  # fail early on a missing optional package
    given = Path(path)
    if not os.path.lexists(given):
        raise UsageError(
            f"{given}: no such file or directory. Check the path (relative to {os.getcwd()})."
        )
    try:
        root = given.resolve(strict=True)
    except OSError as exc:
        raise _os_error(exc, str(given), "resolve") from exc
    sink: Progress = progress if progress is not None else NullProgress()
    store_obj = _open_store(store)
    started = now_ns()

    if root.is_dir():
        exclude = str(store_obj.root) if store_obj is not None else None
        files, skipped = _walk(str(root), exclude=exclude)
        kind = "dir"
    elif root.is_file():
        files, skipped = [_File(root.name, str(root), root.stat())], []
        kind = "file"
    else:
        raise UsageError(
            f"{given} is a {_kind(root.stat().st_mode)}, not a file or directory; "
            "fingerprint the data it provides instead."
        )

    cache = StatCache(cache_path(store_obj.root)) if store_obj is not None else None
    try:
        cached: dict[str, Any] = {}
        if cache is not None and use_cache:
            if kind == "dir":
                cached = cache.load_tree(str(root), algo)
            else:
                row = cache.get(str(root), algo)
                cached = {str(root): row} if row else {}
        digests: dict[str, str] = {}
        sizes: dict[str, int] = {}
        todo: list[_File] = []
        matched = 0
        for f in files:
            row = cached.get(f.abspath if kind == "file" else str(root) + "/" + f.relpath)
            matched += row is not None
            if row is not None and is_fresh(row, f.st):
                digests[f.relpath] = row[4]
                sizes[f.relpath] = f.st.st_size
            else:
                todo.append(f)
        sink.set_total(sum(f.st.st_size for f in todo))
        hashed = _hash_many(todo, algo, started, sink)
        new_rows = []
        for f in todo:
            digest, st = hashed[f.relpath]
            key = _stat_key(st)
            digests[f.relpath] = digest
            sizes[f.relpath] = key[1]
            new_rows.append(
                (
                    f.abspath if kind == "file" else str(root) + "/" + f.relpath,
                    (*key, digest, started),
                )
            )
        if cache is not None:
            gone: list[str] = []
            if kind == "dir" and matched < len(cached):  # rows of files since deleted
                seen = {str(root) + "/" + f.relpath for f in files}
                gone = [p for p in cached if p not in seen]
            cache.put_many(algo, new_rows, forget=gone)
        notes = list(cache.notes) if cache is not None else []
    finally:
        if cache is not None:
            cache.close()

    entries = tuple(ManifestEntry(rel, sizes[rel], digests[rel]) for rel in sorted(digests))
    total = sum(e.size for e in entries)
    digest = dir_digest(entries, algo) if kind == "dir" else entries[0].digest
    fp = Fingerprint(
        digest=digest,
        algo=algo,
        size=total,
        nfiles=len(entries),
        kind=kind,
        entries=entries,
        path=root,
        skipped=tuple(skipped),
        hashed_files=len(todo),
        hashed_bytes=sum(sizes[f.relpath] for f in todo),
        notes=tuple(notes),
    )
    if kind == "dir" and keep_manifest and store_obj is not None:
        from .manifest import save_manifest

        try:
            manifest_id = save_manifest(fp, store_obj.root)
        except OSError as exc:
            notes.append(f"manifest not saved in {store_obj.root} ({exc}); diffs will lack it")
            return _replace(fp, notes=tuple(notes))
        return _replace(fp, manifest_id=manifest_id)
    return fp


def _replace(fp: Fingerprint, **changes: Any) -> Fingerprint:
    from dataclasses import replace

    return replace(fp, **changes)


def _open_store(store: Store | str | os.PathLike[str] | None) -> Store | None:
    from ..store.store import Store

    if isinstance(store, Store):
        return store
    if store is not None:
        return Store(store)
    try:
        return Store.open()
    except ReplicatorError:
        return None
