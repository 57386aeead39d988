"""One job's ``replicator run`` as a child process on the machine that got the job (a Slurm
node, a Ray worker), and what a restarted job runs instead: ``replicator run --resume`` of the
run its earlier attempt left.

A job finds its own run from run directories, whose ``run.json`` records the sweep id and job
index (``seeding``); the compute node writes nothing but that run directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ...store import Store, find_project_root
from ..record import sweep_runs
from .base import Job, JobResult, JobState

__all__ = [
    "JobProcess",
    "change_state",
    "continued",
    "copy_result",
    "find_job_run",
    "job_command",
    "resume_argv",
]

# How long a restarted job waits for the run its killed attempt left to read as ended (its
# launcher records 'interrupted' on SIGTERM; a launcher killed on another host reads as crashed
# only once its heartbeat is stale).
WAIT_FOR_ENDED_S = 30.0


def _store(job: Job) -> Store:
    given = job.env.get("REPLICATOR_STORE")
    if given:
        return Store(os.path.expanduser(given), project_root=find_project_root(job.cwd))
    return Store.open(job.cwd)


def find_job_run(job: Job) -> tuple[str, str] | None:
    """``(run id, status)`` of the newest run of ``job`` (its sweep id and index), or None."""
    runs = sweep_runs(_store(job), job.sweep_id).get(job.index, [])
    if not runs:
        return None
    newest = runs[-1]
    return newest.id, str(newest.status)


def resume_argv(job: Job, run_id: str) -> tuple[str, ...]:
    """The job's ``replicator run`` command, continuing ``run_id`` instead of starting a run."""
    argv = list(job.argv)
    prefix = argv[: argv.index("run") + 1] if "run" in argv else ["replicator", "run"]
    return (*prefix, "--resume", run_id)


def job_command(job: Job, *, restarted: bool) -> tuple[str, ...] | None:
    """What this attempt of ``job`` runs: its own command the first time, ``--resume`` of the
    run an earlier attempt left after a requeue; None when that run already completed."""
    if job.resume_run is not None and "--resume" not in job.argv:
        return resume_argv(job, job.resume_run)
    if not restarted:
        return job.argv
    found = find_job_run(job)
    if found is None:  # the earlier attempt died before its run started
        return job.argv
    run_id, status = found
    deadline = time.monotonic() + WAIT_FOR_ENDED_S
    while status == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        found = find_job_run(job)
        status = found[1] if found else status
    if status == "completed":
        return None
    return resume_argv(job, run_id)


def _ignore_preemption_signal() -> None:
    # Slurm signals every process of the job; the job's own process checkpoints and stops the
    # launcher with SIGTERM, which it records as 'interrupted' (USR2 would kill it unrecorded).
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class JobProcess:
    """The child ``replicator run`` of one job: started, waited for, stopped on request."""

    def __init__(
        self,
        argv: tuple[str, ...],
        *,
        cwd: str,
        env: Mapping[str, str],
        ignore_preemption_signal: bool = False,
        stderr: Any = None,
    ) -> None:
        """``env`` is the child's whole environment (:func:`~.base.job_environ`)."""
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=_ignore_preemption_signal if ignore_preemption_signal else None,
        )

    def wait(self, *, stop: Callable[[], bool] | None = None) -> int:
        """Its exit code (negative: the signal that ended it). With ``stop``, polls (and stops
        the child once ``stop()`` is true), so that a signal handler of this process may stop
        the child meanwhile (:meth:`terminate`; a blocking wait holds the lock it needs)."""
        if stop is None:
            return self.proc.wait()
        while (code := self.proc.poll()) is None:
            if stop():
                self.terminate()
            time.sleep(0.05)
        return code

    def terminate(self, grace_s: float = 60.0) -> None:
        """SIGTERM (the launcher forwards it to the script and records the run as interrupted),
        SIGKILL after ``grace_s``."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def continued(job: Job) -> Job:
    """``job`` set to continue the run it made so far (used when it is checkpointed)."""
    found = find_job_run(job)
    if found is None or found[1] == "completed":
        return job
    return replace(job, resume_run=found[0])


def copy_result(result: JobResult) -> JobResult:
    """A snapshot of ``result`` for ``on_change`` (the executor keeps changing its own)."""
    return JobResult(
        result.index, result.state, result.exit_code, result.external_id, result.message
    )


def change_state(
    result: JobResult,
    on_change: Callable[[JobResult], None],
    state: JobState,
    code: int | None,
    message: str | None,
) -> None:
    """Set ``result``'s state and tell ``on_change``, once per change."""
    if result.state == state and result.exit_code == code:
        return
    result.state, result.exit_code, result.message = state, code, message
    on_change(copy_result(result))
