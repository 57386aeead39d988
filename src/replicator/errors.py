"""Exceptions raised by replicator.

Every error replicator raises on purpose derives from :class:`ReplicatorError`, whose message says
what went wrong, where (file and line, run id, config key) and what to do. The CLI prints the
message after ``Error:`` and exits with ``exit_code``; it never shows a traceback for these.

    ReplicatorError                 (exit code 1: the thing checked failed)
    ├── UsageError                  (exit code 2: the user's input is wrong)
    │   ├── ConfigError             a config file, override or value is invalid
    │   ├── QueryError              a ``--where`` expression cannot be parsed
    │   └── RunNotFoundError        no run (or several) match a run id
    ├── StoreError                  the store or a run directory cannot be read or written
    │   └── DamagedRunError         one run's files hold a wrong value (names directory and field)
    ├── CaptureError                capturing code, environment or hardware failed
    ├── GitError                    a git command failed (names the command, directory, git's words)
    ├── SeedingError                a framework could not be seeded as asked
    ├── CheckpointError             a checkpoint cannot be saved, verified or loaded
    │   ├── CheckpointHashError     a checkpoint file does not match its manifest's hash
    │   └── RNGRestoreError         a random stream in a checkpoint cannot be restored
    ├── FingerprintError            a file cannot be hashed reliably (changed while read, unreadable)
    ├── MissingDependencyError      an optional extra is needed (names the pip command)
    ├── ExecutorUnavailableError    a sweep executor (Slurm, Ray) cannot be reached
    ├── RemoteError                 a remote store cannot be reached, read or written
    └── ReproduceError              a stage of `replicator reproduce` failed (names stage and cause)

The feature packages re-export their own: ``replicator.checkpoints.CheckpointHashError``,
``replicator.data.FingerprintError`` and ``replicator.reproduce.ReproduceError`` are these classes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

__all__ = [
    "CaptureError",
    "CheckpointError",
    "CheckpointHashError",
    "ConfigError",
    "DamagedRunError",
    "ExecutorUnavailableError",
    "FingerprintError",
    "GitError",
    "MissingDependencyError",
    "QueryError",
    "RNGRestoreError",
    "RemoteError",
    "ReplicatorError",
    "ReproduceError",
    "RunNotFoundError",
    "SeedingError",
    "StoreError",
    "UsageError",
]


class ReplicatorError(Exception):
    """Base class of every error replicator raises on purpose."""

    exit_code = 1


class UsageError(ReplicatorError):
    """The user's input (arguments, files, run ids) is wrong; exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A config file, override or value is invalid."""


class QueryError(UsageError):
    """A ``--where`` expression cannot be parsed or evaluated."""


class RunNotFoundError(UsageError):
    """No run, or more than one run, matches the given id."""


class StoreError(ReplicatorError):
    """The store or a run directory cannot be read or written."""

    @classmethod
    def from_os_error(
        cls, exc: OSError, *, action: str = "write the store at", path: object = None
    ) -> StoreError:
        """The error to show for an OSError of the machine (disk full, read-only filesystem,
        permission denied, an I/O error): what failed, where, and the fix; not a bug report.

        ``action`` completes "cannot ..." (``"write the store at"``, ``"read"``, ``"access"``); ``path``
        defaults to the file the OSError names."""
        where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else exc.filename
        reason, fix = _ENVIRONMENT_ERRORS.get(exc.errno or 0, (exc.strerror or str(exc), ""))
        if not fix:
            fix = "Check that it can be read." if action == "read" else _STORE_FIX
        return cls(f"cannot {action} {where}: {reason}. {fix}")

    @staticmethod
    def is_environmental(exc: BaseException) -> bool:
        """Whether ``exc`` is a fault of the machine (disk full, read-only, permission, I/O)
        that :meth:`from_os_error` names, rather than a bug."""
        return isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRORS


class DamagedRunError(StoreError):
    """One run's files hold a value of the wrong type (``"started": "yesterday"``): the run is
    skipped by listings; ``run_dir`` and ``fields`` name what is damaged."""

    def __init__(
        self, message: str, *, run_dir: str | os.PathLike[str], fields: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.run_dir = os.fspath(run_dir)
        self.fields = tuple(fields)


_STORE_FIX = (
    "Use a store you can write (REPLICATOR_STORE=PATH or 'store: PATH' in replicator.yaml) "
    "or fix the permissions."
)
_ENVIRONMENT_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: (
        "disk full",
        "Free space on that disk or use a store on another one "
        "(REPLICATOR_STORE=PATH or 'store: PATH' in replicator.yaml).",
    ),
    errno.EDQUOT: (
        "disk quota exceeded",
        "Free space within your quota or use a store on "
        "another disk (REPLICATOR_STORE=PATH or 'store: PATH' in replicator.yaml).",
    ),
    errno.EROFS: ("read-only file system", ""),
    errno.EACCES: ("permission denied", ""),
    errno.EPERM: ("operation not permitted", ""),
    errno.EIO: ("input/output error (a failing disk or a lost network filesystem)", ""),
}


class CaptureError(ReplicatorError):
    """Capturing code, environment or hardware facts failed."""


class GitError(ReplicatorError):
    """A git command failed; the message names the command, the directory and git's own words."""

    def __init__(self, command: Sequence[str], cwd: str | os.PathLike[str], stderr: str) -> None:
        super().__init__(f"git {' '.join(command[:2])} failed in {os.fspath(cwd)}: {stderr}")
        self.command = tuple(command)
        self.cwd = os.fspath(cwd)
        self.stderr = stderr


class SeedingError(ReplicatorError):
    """A framework could not be seeded or made deterministic as asked."""


class CheckpointError(ReplicatorError):
    """A checkpoint cannot be saved, verified or loaded (damaged, altered, unsafe, missing)."""


class CheckpointHashError(CheckpointError):
    """A checkpoint file's content does not match the hash its manifest recorded."""


class RNGRestoreError(CheckpointError):
    """A random stream saved in a checkpoint cannot be restored, so a resume would not be exact."""


class FingerprintError(ReplicatorError):
    """A file could not be hashed reliably (unreadable, changing, a broken or looping link)."""


class MissingDependencyError(ReplicatorError):
    """An optional dependency is needed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, *, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the optional package '{package}'. "
            f"Install it with: pip install 'replicator[{extra}]'"
        )
        self.package = package
        self.extra = extra


class ExecutorUnavailableError(ReplicatorError):
    """A sweep executor (Slurm, Ray) cannot be reached; nothing was submitted."""


class RemoteError(ReplicatorError):
    """A remote store (``replicator push``/``pull``) cannot be reached, read or written; the
    message names the remote (credentials removed) and what to check."""


class ReproduceError(ReplicatorError):
    """A reproduction stopped at ``stage`` (checkout, environment, data, run...) because of ``cause``.

    The stages, in order, are ``replicator.reproduce.STAGES``.
    """

    def __init__(self, stage: str, cause: str, *, hint: str = "") -> None:
        message = f"reproduce failed at stage '{stage}': {cause}"
        if hint:
            message = message.rstrip(". ") + f". {hint}"
        super().__init__(message)
        self.stage = stage
        self.cause = cause
