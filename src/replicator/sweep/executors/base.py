"""The one interface every sweep executor implements (local processes, Slurm, Ray).

A :class:`Job` is a whole ``replicator run`` command line: each job is its own process and makes
its own run, which records the sweep id and job index (``REPLICATOR_SWEEP_JOB``). An
:class:`Executor` submits jobs, reports each state change through ``on_change`` and blocks until
every job is final. Executors are looked up by name with :func:`get_executor`, which imports the
module only then, so that a missing optional package (submitit, ray) is a one-line error.
"""

from __future__ import annotations

import abc
import enum
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..._protocol import CHILD_VARIABLES
from ...errors import UsageError

__all__ = [
    "EXECUTORS",
    "Executor",
    "Job",
    "JobResult",
    "JobState",
    "Resources",
    "get_executor",
    "job_environ",
]


@dataclass(frozen=True)
class Resources:
    """What one job asks of the machine or cluster; ``None`` leaves the executor's default."""

    cpus: int | None = None
    gpus: int | None = None
    mem_gb: float | None = None
    time_min: int | None = None
    partition: str | None = None  # Slurm only
    extra: Mapping[str, Any] = field(default_factory=dict)  # the `launcher:` config section


@dataclass(frozen=True)
class Job:
    """One ``replicator run`` of a sweep."""

    sweep_id: str
    index: int  # position in the sweep (0..n-1), stable across `sweep resume`
    argv: tuple[str, ...]  # the whole command: (sys.executable, "-m", "replicator", "run", ...)
    cwd: str
    env: Mapping[str, str]  # added to the job's environment (REPLICATOR_SWEEP_JOB etc.)
    resources: Resources = field(default_factory=Resources)
    resume_run: str | None = None  # set when the job continues a run (requeue / sweep resume)


class JobState(str, enum.Enum):
    """Where a job stands; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


@dataclass
class JobResult:
    """A job's state as its executor sees it."""

    index: int
    state: JobState
    exit_code: int | None
    external_id: str | None  # Slurm job id, Ray task id, local pid
    message: str | None = None


class Executor(abc.ABC):
    """Runs the jobs of a sweep. Subclasses set ``name`` and implement :meth:`run`."""

    name: ClassVar[str]

    def check(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Raise ExecutorUnavailableError saying why, before anything is submitted."""

    def check_resources(self, resources: Resources) -> None:  # noqa: B027 - optional hook
        """Raise UsageError for resources or `launcher:` options this executor would refuse,
        before the sweep's record is written and anything is submitted."""

    def cancel(self, index: int) -> bool:
        """Stop job ``index`` while :meth:`run` is waiting (Optuna pruning); False when this
        executor cannot stop one job (the job then runs to its end, its result ignored)."""
        return False

    @abc.abstractmethod
    def run(self, jobs: Sequence[Job], on_change: Callable[[JobResult], None]) -> list[JobResult]:
        """Submit every job, call ``on_change`` at each state change (queued -> running ->
        final), block until all are final and return one result per job, in the order of
        ``jobs``. Ctrl-C (KeyboardInterrupt) cancels what was started, then propagates."""


def job_environ(job: Job, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A fresh environment for ``job``: ``base`` (default: this process's) without the
    variables a launcher gives its child (so a job never joins the submitter's own run), plus
    ``job.env``. Each job gets its own copy: nothing one job sets reaches another."""
    launcher_sets = {variable.name for variable in CHILD_VARIABLES}
    environ = {k: v for k, v in (os.environ if base is None else base).items()}
    for name in launcher_sets:
        environ.pop(name, None)
    environ.update(job.env)
    return environ


EXECUTORS: dict[str, str] = {
    "local": "replicator.sweep.executors.local:LocalExecutor",
    "slurm": "replicator.sweep.executors.slurm:SlurmExecutor",
    "ray": "replicator.sweep.executors.ray:RayExecutor",
}
"""Each executor's name -> ``module:Class``, imported only when it is chosen."""


def get_executor(name: str, **options: Any) -> Executor:
    """The executor called ``name``, built with keyword ``options``; imported only now."""
    try:
        target = EXECUTORS[name]
    except KeyError:
        known = ", ".join(sorted(EXECUTORS))
        raise UsageError(f"Unknown sweep executor '{name}'; choose one of: {known}.") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    executor: Executor = cls(**options)
    return executor
