"""Exceptions raised by replicator.

Every error replicator raises on purpose derives from :class:`ReplicatorError`, whose message says
what went wrong, where (file and line, run id, config key) and what to do. The CLI prints the
message and exits with ``exit_code``; it never shows a traceback for these.

    ReplicatorError                 (exit code 1: the thing checked failed)
    ├── UsageError                  (exit code 2: the user's input is wrong)
    │   ├── ConfigError             a config file, override or value is invalid
    │   ├── QueryError              a ``--where`` expression cannot be parsed
    │   └── RunNotFoundError        no run (or several) match a run id
    ├── StoreError                  the store or a run directory cannot be read or written
    ├── CaptureError                capturing code, environment or hardware failed
    ├── SeedingError                a framework could not be seeded as asked
    ├── CheckpointError             a checkpoint cannot be saved, verified or loaded
    │   └── RNGRestoreError         a random stream in a checkpoint cannot be restored
    ├── MissingDependencyError      an optional extra is needed (names the pip command)
    ├── data.FingerprintError       a file cannot be hashed reliably (changed while read, unreadable)
    └── reproduce.ReproduceError    a stage of `replicator reproduce` failed (names stage and cause)
"""

from __future__ import annotations

__all__ = [
    "CaptureError",
    "CheckpointError",
    "ConfigError",
    "MissingDependencyError",
    "QueryError",
    "RNGRestoreError",
    "ReplicatorError",
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


class CaptureError(ReplicatorError):
    """Capturing code, environment or hardware facts failed."""


class SeedingError(ReplicatorError):
    """A framework could not be seeded or made deterministic as asked."""


class CheckpointError(ReplicatorError):
    """A checkpoint cannot be saved, verified or loaded (damaged, altered, unsafe, missing)."""


class RNGRestoreError(CheckpointError):
    """A random stream saved in a checkpoint cannot be restored, so a resume would not be exact."""


class MissingDependencyError(ReplicatorError):
    """An optional dependency is needed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, *, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the optional package '{package}'. "
            f"Install it with: pip install 'replicator[{extra}]'"
        )
        self.package = package
        self.extra = extra
