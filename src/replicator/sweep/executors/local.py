"""The local executor: up to N ``replicator run`` processes at once on this machine.

Each job is started in its own session (its own process group), with its own copy of the
environment (:func:`~.base.job_environ`), so no state passes from one job to another and a
terminal's Ctrl-C reaches the sweep only: the sweep then sends SIGINT to every job's group, each
``replicator run`` forwards it to its script and records the run as interrupted, readable.
A job's own output goes to its run (``stdout.log``, ``stderr.log``); what the launcher itself
says (a usage error before the run exists) is kept as the job's ``message``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, ClassVar

from ...errors import UsageError
from .base import Executor, Job, JobResult, JobState, job_environ

__all__ = ["LocalExecutor"]

_POLL_S = 0.02
_GRACE_S = 15.0  # after SIGINT, what a job gets to record its run before SIGKILL


@dataclass
class _Started:
    job: Job
    process: subprocess.Popen[bytes]
    stderr: IO[bytes]
    cancelled: bool = False


class LocalExecutor(Executor):
    """``jobs`` ``replicator run`` processes at once on this machine."""

    name: ClassVar[str] = "local"

    def __init__(self, jobs: int = 1) -> None:
        if jobs < 1:
            raise UsageError(f"-j/--jobs must be at least 1, got {jobs}.")
        self.jobs = jobs
        self._running: dict[int, _Started] = {}

    def cancel(self, index: int) -> bool:
        started = self._running.get(index)
        if started is None:
            return False
        started.cancelled = True
        _signal_group(started.process, signal.SIGINT)
        return True

    def run(self, jobs: Sequence[Job], on_change: Callable[[JobResult], None]) -> list[JobResult]:
        results: dict[int, JobResult] = {}
        waiting = list(jobs)
        for job in waiting:
            on_change(_result(job, JobState.QUEUED))
        try:
            while waiting or self._running:
                while waiting and len(self._running) < self.jobs:
                    job = waiting.pop(0)
                    started = self._start(job)
                    if isinstance(started, JobResult):
                        results[job.index] = started
                        on_change(started)
                        continue
                    self._running[job.index] = started
                    on_change(_result(job, JobState.RUNNING, pid=started.process.pid))
                for index, started in list(self._running.items()):
                    if started.process.poll() is None:
                        continue
                    del self._running[index]
                    results[index] = _finished(started)
                    on_change(results[index])
                time.sleep(_POLL_S)
        except BaseException:
            self._stop_all(waiting, results, on_change)
            raise
        return [results[job.index] for job in jobs]

    def _start(self, job: Job) -> _Started | JobResult:
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the job ends
        try:
            process = subprocess.Popen(
                list(job.argv),
                cwd=job.cwd,
                env=job_environ(job),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: Ctrl-C is the sweep's to pass
            )
        except OSError as exc:
            stderr.close()
            message = f"cannot start {job.argv[0]!r}: {exc.strerror or exc}"
            return _result(job, JobState.FAILED, message=message)
        return _Started(job, process, stderr)

    def _stop_all(
        self,
        waiting: list[Job],
        results: dict[int, JobResult],
        on_change: Callable[[JobResult], None],
    ) -> None:
        """Interrupt every running job, wait for each to record its run, cancel the rest."""
        for started in self._running.values():
            started.cancelled = True
            _signal_group(started.process, signal.SIGINT)
        deadline = time.monotonic() + _GRACE_S
        for index, started in list(self._running.items()):
            try:
                started.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(started.process, signal.SIGKILL)
                started.process.wait()
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
                _signal_group(started.process, signal.SIGKILL)
                started.process.wait()
            del self._running[index]
            results[index] = _finished(started)
            on_change(results[index])
        for job in waiting:
            results[job.index] = _result(job, JobState.CANCELLED, message="not started")
            on_change(results[job.index])


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _finished(started: _Started) -> JobResult:
    code = started.process.returncode
    message = _tail(started.stderr)
    started.stderr.close()
    if code == 0:
        state = JobState.COMPLETED
    elif started.cancelled:
        state = JobState.CANCELLED
    else:
        state = JobState.FAILED
    return JobResult(started.job.index, state, code, str(started.process.pid), message or None)


def _tail(stream: IO[bytes], limit: int = 2000) -> str:
    """The launcher's last words (stderr), for a job that failed before its run said why."""
    try:
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        stream.seek(max(0, size - limit))
        text = stream.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("Error", "replicator: run"))]
    return (errors or lines or [""])[-1].strip()


def _result(
    job: Job, state: JobState, *, pid: int | None = None, message: str | None = None
) -> JobResult:
    return JobResult(job.index, state, None, str(pid) if pid is not None else None, message)
