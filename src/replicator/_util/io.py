"""Crash-safe file writes: every write that must survive a crash goes through here.

``atomic_write`` writes to a temporary file in the same directory, fsyncs it, renames it over the
target and fsyncs the directory, so a reader sees either the old or the new content, never a torn
file. ``append_line`` appends whole lines with a single ``write`` on an ``O_APPEND`` descriptor:
appended data is never rewritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["append_lines", "atomic_write", "atomic_write_json", "fsync_dir", "read_json"]

# The process umask, read once (os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


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
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp makes 0600 files; runs and reports are shared (cluster filesystems, teams),
        # so the result gets the mode any new file would get under the user's umask.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync:
        fsync_dir(target.parent)
    return target


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, fsync: bool = True) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"
    return atomic_write(path, text, fsync=fsync)


def append_lines(path: str | os.PathLike[str], lines: list[str], *, fsync: bool = False) -> None:
    """Append ``lines`` (without newlines) in one write; earlier content is never touched."""
    if not lines:
        return
    payload = ("\n".join(lines) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file (raises OSError or ValueError; callers add context)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
