"""The file walk and hashing pipeline behind :func:`replicator.data.fingerprint`.

One ``scandir`` walk with one ``stat`` per file (:func:`_walk`); files to hash are split by
size: large ones are hashed one at a time, BLAKE3 through a memory map with all cores, md5/xxh3
through reused buffers; many small ones go to forked worker processes, a few to a plain loop
(:func:`_hash_many`). A file that changes while it is hashed, a broken symlink, a symlink loop or
an unreadable file raises :class:`~replicator.errors.FingerprintError`.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import FingerprintError, ReplicatorError
from .digest import _hasher

if TYPE_CHECKING:
    from .._util.progress import Progress

IGNORED_DIRS = frozenset({".git", ".hg", ".dvc"})
IGNORED_FILES = frozenset({".git"})
# Files at least this big are hashed one at a time (BLAKE3: mmap + all cores).
LARGE_FILE = 8 << 20
BUFFER_SIZE = 8 << 20
# Below this many files to hash, starting worker processes costs more than it saves.
POOL_MIN_FILES = 512
POOL_MIN_BYTES = 4 << 20
POOL_WORKERS: int | None = None  # default: two per CPU, at most 8


# --------------------------------------------------------------------------- hashing files
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


# listing a directory through a descriptor needs scandir(fd) and stat(dir_fd=): not on Windows
_BY_FD = os.scandir in os.supports_fd and os.stat in os.supports_dir_fd


def _walk(root: str, *, exclude: str | None) -> tuple[list[_File], list[tuple[str, str]]]:
    """Every file under ``root`` with one stat each, plus what was skipped and why.

    Where the platform allows it (Linux, macOS), each directory is opened once and listed
    through its descriptor, so every ``stat`` is an ``fstatat`` relative to it: the kernel
    resolves one name instead of the whole path.
    """
    files: list[_File] = []
    skipped: list[tuple[str, str]] = []
    append = files.append
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY) if _BY_FD else None
        except OSError as exc:
            raise _os_error(exc, folder, "list the directory") from exc
        try:
            with os.scandir(folder if fd is None else fd) as it:
                base = folder if folder.endswith(os.sep) else folder + os.sep
                for entry in it:
                    name = entry.name
                    if entry.is_dir(follow_symlinks=False):
                        if name not in IGNORED_DIRS and base + name != exclude:
                            stack.append((base + name, prefix + name + "/"))
                        continue
                    if name in IGNORED_FILES:
                        continue
                    try:  # a symlink is followed (to a regular file it is hashed, as in DVC)
                        if entry.is_symlink():
                            st = os.stat(name if fd is not None else base + name, dir_fd=fd)
                        else:
                            st = entry.stat()
                    except OSError as exc:
                        raise _os_error(exc, base + name, "stat") from exc
                    if stat.S_ISREG(st.st_mode):
                        append(_File(prefix + name, base + name, st))
                    elif stat.S_ISDIR(st.st_mode):
                        skipped.append(
                            (prefix + name, "symlink to a directory (not followed, as in DVC)")
                        )
                    else:
                        skipped.append(
                            (prefix + name, f"special file ({_kind(st.st_mode)}), not hashed")
                        )
        except OSError as exc:
            raise _os_error(exc, folder, "list the directory") from exc
        finally:
            if fd is not None:
                os.close(fd)
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
