"""One resume at a time: the lock ``replicator run --resume RUN`` holds on the run's directory.

The lock is the file ``resume.lock`` in the run directory, created with ``O_CREAT | O_EXCL``
(atomic on local disks and on NFS v3 and later) and holding its holder's host, pid and the
pid's start time. It is held for the whole resumed session and removed at its end. A lock whose
holder died without removing it (the launcher was killed) is stale and taken over, with a
warning:

- on the same host, when the holder's pid no longer runs (or now belongs to another process);
- on another host, when neither the lock nor the run's ``heartbeat`` (touched every 10 s while
  the resumed run lives) changed for the store's ``heartbeat_stale_s`` seconds (default 120).

Under the lock, a run whose first session (or an earlier resume) still lives by the same rules
is refused too: its heartbeat is fresh, so resuming it would run two sessions into one record.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from .._util.io import read_json
from ..errors import StoreError, UsageError
from ..store import process_identity, recorder_alive

__all__ = ["LOCK_FILE", "ResumeLock"]

LOCK_FILE = "resume.lock"
"""The lock's name in the run directory."""

_TRIES = 20


class ResumeLock:
    """The held lock of one run directory; :meth:`acquire` takes it, :meth:`release` (or the
    end of a ``with`` block) gives it back."""

    def __init__(self, path: Path, token: str) -> None:
        self.path = path
        self.token = token

    @classmethod
    def acquire(
        cls,
        run_dir: Path,
        *,
        stale_after: float,
        on_warning: Callable[[str], None] | None = None,
    ) -> ResumeLock:
        """Take the lock of ``run_dir`` and check that no session of the run still lives.

        Raises :class:`~replicator.errors.UsageError` naming the host, the pid and the age of
        the heartbeat when another resume holds the lock or the run is still running; a stale
        lock is taken over and ``on_warning`` says whose it was.
        """
        path, run_id = run_dir / LOCK_FILE, run_dir.name
        holder = {**process_identity(), "since": time.time(), "token": secrets.token_hex(8)}
        payload = json.dumps(holder, indent=2).encode()
        for _ in range(_TRIES):
            if _create(path, payload):
                lock = cls(path, holder["token"])
                try:
                    _refuse_live_run(run_dir, run_id, stale_after)
                except BaseException:
                    lock.release()
                    raise
                return lock
            found = _read_holder(path)
            if found is None:
                continue  # released in the meantime: try again
            other, last_sign = found
            if _alive(other, _latest(last_sign, _mtime(run_dir / "heartbeat")), stale_after):
                raise UsageError(
                    f"Run {run_id} is already being resumed by {_who(other)} "
                    f"({_ages(other, run_dir, last_sign)}). Only one resume of a run runs at a "
                    "time: wait for it to end, or stop it first."
                )
            if _take_stale(path, other) and on_warning is not None:
                on_warning(
                    f"run {run_id}: took over the resume lock left by {_who(other)}, which "
                    f"{_why_stale(other, stale_after)}."
                )
        raise StoreError(
            f"Could not take the resume lock {path} after {_TRIES} tries: other resumes keep "
            "taking and dropping it. Run one resume at a time."
        )

    def release(self) -> None:
        """Remove the lock if it is still this one (a holder taken over as stale leaves the
        new holder's lock in place)."""
        found = _read_holder(self.path)
        if found is not None and found[0].get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> ResumeLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _create(path: Path, payload: bytes) -> bool:
    """Create the lock with its holder's facts; False when it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise StoreError.from_os_error(exc, action="create the resume lock", path=path) from exc
    try:
        os.write(fd, payload)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise StoreError.from_os_error(exc, action="write the resume lock", path=path) from exc
    os.close(fd)
    return True


def _read_holder(path: Path) -> tuple[dict[str, Any], float] | None:
    """The lock's holder and the lock's mtime; None when there is no lock.

    A lock read between its creation and its content (empty or torn) is read again for up to
    a second; one still without a holder reads as held by an unknown process on an unknown
    host, alive while its mtime is fresh (a holder killed between the two steps).
    """
    for _ in range(20):
        try:
            mtime = path.stat().st_mtime
            data = read_json(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict):
            return data, mtime
        time.sleep(0.05)
    return {}, mtime


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _latest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _alive(holder: Mapping[str, Any], last_sign: float | None, stale_after: float) -> bool:
    """Same host: whether the pid runs. Another host, or a holder not known yet: whether the
    last sign of life is younger than ``stale_after``."""
    pid = _local_pid(holder)
    if pid is None:
        return last_sign is not None and time.time() - last_sign < stale_after
    if os.path.isdir("/proc/self"):  # Linux: the pid with its start time (a reused pid differs)
        return recorder_alive(dict(holder), None)
    try:
        os.kill(pid, 0)  # POSIX without /proc: signal 0 only checks that the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _local_pid(holder: Mapping[str, Any]) -> int | None:
    """The holder's pid when it runs on this host and this host can check pids."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return None
    return pid if os.name == "posix" else None


def _take_stale(path: Path, stale: Mapping[str, Any]) -> bool:
    """Remove the stale lock ``stale``; False when another process removed or replaced it first.

    The lock is renamed aside first and checked: when the file moved is no longer the stale
    one (another process took over between the check and the rename), it is put back.
    """
    aside = path.with_name(f".{LOCK_FILE}.stale-{secrets.token_hex(6)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError.from_os_error(exc, action="take over the resume lock", path=path) from exc
    found = _read_holder(aside)
    moved = found[0] if found is not None else {}
    if moved.get("token") != stale.get("token"):
        with contextlib.suppress(OSError):
            _create(path, aside.read_bytes())
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True


def _refuse_live_run(run_dir: Path, run_id: str, stale_after: float) -> None:
    """Refuse a run whose recorder still lives (a session started without the lock: the run's
    first one, or ``start(resume=...)`` in a script)."""
    try:
        meta = read_json(run_dir / "run.json")
    except (OSError, ValueError):
        return  # resume_run says what is wrong with the record
    if not isinstance(meta, dict) or meta.get("status") != "running":
        return
    heartbeat = _mtime(run_dir / "heartbeat")
    if not _alive(meta, heartbeat, stale_after):
        return
    age = f"last heartbeat {time.time() - heartbeat:.0f} s ago" if heartbeat else "no heartbeat"
    raise UsageError(
        f"Run {run_id} is still running: {_who(meta)}, {age}. Stop it before resuming; a run "
        f"on another host counts as crashed once its heartbeat is {stale_after:g} s old "
        "(heartbeat_stale_s in replicator.yaml, or $REPLICATOR_HEARTBEAT_STALE_S)."
    )


def _who(holder: Mapping[str, Any]) -> str:
    if not holder.get("host"):
        return "another process (its lock is being written)"
    return f"pid {holder.get('pid')} on {holder.get('host')}"


def _ages(holder: Mapping[str, Any], run_dir: Path, lock_mtime: float) -> str:
    now = time.time()
    since = holder.get("since")
    started = since if isinstance(since, (int, float)) else lock_mtime
    parts = [f"since {time.strftime('%H:%M:%S', time.localtime(started))}"]
    heartbeat = _mtime(run_dir / "heartbeat")
    if heartbeat is not None:
        parts.append(f"last heartbeat {now - heartbeat:.0f} s ago")
    return ", ".join(parts)


def _why_stale(holder: Mapping[str, Any], stale_after: float) -> str:
    if _local_pid(holder) is not None:
        return "is no longer running"
    return f"gave no sign of life (heartbeat) for more than {stale_after:g} s"
