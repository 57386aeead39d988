"""Crash-safe file writes: every write that must survive a crash goes through here.

``atomic_write`` writes to a temporary file in the same directory, fsyncs it, renames it over the
target and fsyncs the directory, so a reader sees either the old or the new content, never a torn
file. ``replacing`` gives the same guarantee to a writer that opens the file itself (a
checkpoint streamed to disk). Temp files are created with mode 0o666 and the kernel applies the
umask; nothing here reads or sets the umask. ``append_lines`` appends whole lines with a single
``write`` on an ``O_APPEND`` descriptor: appended data is never rewritten.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "append_bytes",
    "append_lines",
    "atomic_write",
    "atomic_write_json",
    "fsync_dir",
    "read_json",
    "replacing",
]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory entry (a rename or a new file) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, fsync: bool = True) -> Path:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename, directory fsync)."""
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with replacing(target, fsync=fsync) as tmp, open(tmp, "wb") as f:
        f.write(payload)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return target


@contextmanager
def replacing(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """A new temp file beside ``path`` to write; renamed over ``path`` when the block succeeds.

    When the block raises, the temp file is removed and ``path`` is untouched. With ``fsync``
    the directory is flushed after the rename (the caller flushes the file it wrote).
    """
    target = Path(path)
    fd, tmp = _create_temp(target)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync:
        fsync_dir(target.parent)


def _create_temp(target: Path) -> tuple[int, Path]:
    """A new, empty temp file beside ``target`` (``.NAME.<random>.tmp``), opened for writing.

    It is created with mode 0o666 and the kernel applies the umask, so the result gets the mode
    any new file gets (runs and reports are shared on cluster filesystems and in teams). Reading
    the umask instead would mean setting it, which changes it for every thread for a moment.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, fsync: bool = True) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"
    return atomic_write(path, text, fsync=fsync)


def append_lines(path: str | os.PathLike[str], lines: list[str], *, fsync: bool = False) -> None:
    """Append ``lines`` (without newlines) in one write; earlier content is never touched."""
    if lines:
        append_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"), fsync=fsync)


def append_bytes(path: str | os.PathLike[str], payload: bytes, *, fsync: bool = False) -> None:
    """Append ``payload`` (whole lines, each ending in a newline) in one write.

    When the file does not end with a newline (a line torn by a kill in the middle of a write),
    the payload starts with one, so the torn fragment stays alone on its line and the first new
    line is whole. Two processes appending at once may leave an empty line: readers skip it.
    """
    if not payload:
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    except PermissionError:  # a write-only file: append without looking at its end
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        if _ends_torn(fd):
            payload = b"\n" + payload
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _ends_torn(fd: int) -> bool:
    try:
        size = os.fstat(fd).st_size
        return size > 0 and os.pread(fd, 1, size - 1) != b"\n"
    except OSError:
        return False


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file (raises OSError or ValueError; callers add context)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
