"""The Slurm executor: a sweep's jobs as a Slurm job array, through submitit.

Each array task runs its job's ``replicator run`` as a child process on the node it got and
returns the exit code. The job is *checkpointable* in submitit's sense: on the preemption or
time-limit signal (USR2, ``signal_delay_s`` before the end) submitit calls :meth:`_SweepTask.
checkpoint`, which stops the launcher with SIGTERM (the run reads ``interrupted``) and requeues
the task so that it runs ``replicator run --resume RUN`` of its own run. A task that Slurm
requeues itself (``scontrol requeue``, a preemption with ``PreemptMode=REQUEUE``, a node that
failed) restarts with ``SLURM_RESTART_COUNT`` set and continues its run the same way. The run is
found from the run directories: its ``run.json`` records the sweep id and job index.

Job states come from ``squeue`` (no accounting database needed) and from the result files that
submitit writes into ``folder`` next to each task's stdout and stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..._util.deps import require
from ...errors import ExecutorUnavailableError, UsageError
from ._process import JobProcess, change_state, continued, copy_result, job_command
from .base import Executor, Job, JobResult, JobState, Resources, job_environ

__all__ = ["SlurmExecutor"]

DEFAULT_TIME_MIN = 60  # submitit always asks for a time limit; Hydra's submitit launcher's too
SINFO_TIMEOUT_S = 15.0
# keys of the `launcher:` section that choose the executor rather than configure Slurm
_NOT_SLURM_KEYS = frozenset(
    {"executor", "jobs", "address", "ray_address", "max_requeue", "cluster", "folder"}
)

# squeue's state -> the job's state while no result file exists
_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "SUSPENDED"}
_RUNNING = {"RUNNING", "COMPLETING", "RESIZING", "STAGE_OUT", "SIGNALING"}
_CANCELLED = {"CANCELLED", "REVOKED"}


class _SweepTask:
    """What one array task runs (pickled by submitit). Has ``checkpoint``: requeued on USR2."""

    def __init__(self) -> None:
        self._process: JobProcess | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # a running child is not part of what is resubmitted

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._process = None

    def __call__(self, job: Job) -> int:
        restarted = int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
        argv = job_command(job, restarted=restarted)
        if argv is None:
            return 0  # the run completed before the task was requeued
        stopping: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
        self._process = JobProcess(
            argv, cwd=job.cwd, env=job_environ(job), ignore_preemption_signal=True
        )
        code = self._process.wait(stop=lambda: bool(stopping))
        if stopping:
            # Slurm cancels or requeues the task: leave without the result file, which would
            # read as the job's end (the requeued task runs again and writes it).
            os._exit(128 + signal.SIGTERM)
        return code

    def checkpoint(self, job: Job) -> Any:
        """Stop the run (recorded as interrupted) and resubmit the job as its resume."""
        submitit = require("submitit", purpose="the Slurm sweep executor")
        if self._process is not None:
            self._process.terminate()
        return submitit.helpers.DelayedSubmission(_SweepTask(), continued(job))


class SlurmExecutor(Executor):
    """Jobs as a Slurm job array through submitit; ``cluster="local"`` runs the same tasks
    with submitit's LocalExecutor (no Slurm: for tests and laptops)."""

    name: ClassVar[str] = "slurm"

    def __init__(
        self,
        *,
        folder: str | os.PathLike[str],
        partition: str | None = None,
        array_parallelism: int | None = None,
        max_requeue: int = 3,
        cluster: str | None = None,
        signal_delay_s: int | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.folder = Path(folder)
        self.partition = partition
        self.array_parallelism = array_parallelism
        self.max_requeue = max_requeue
        self.cluster = cluster or "slurm"
        if self.cluster not in ("slurm", "local"):
            raise UsageError(f"SlurmExecutor cluster must be 'slurm' or 'local', got {cluster!r}.")
        self.signal_delay_s = signal_delay_s
        self.poll_s = poll_s
        self._tasks: dict[int, Any] = {}

    # ------------------------------------------------------------------ before submitting

    def check(self) -> None:
        """Slurm answers (``sinfo``) and the partition exists; else nothing is submitted."""
        require("submitit", purpose="the Slurm sweep executor")
        if self.cluster == "local":
            return
        partitions = _partitions()
        if self.partition is not None:
            _check_partition(self.partition, partitions)

    def check_resources(self, resources: Resources) -> None:
        """The `launcher:` options submitit would refuse, refused now (nothing is submitted)."""
        submitit = require("submitit", purpose="the Slurm sweep executor")
        with tempfile.TemporaryDirectory() as folder:
            executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
            _set_parameters(executor, self._parameters(resources))

    def _parameters(self, resources: Resources) -> dict[str, Any]:
        time_min = resources.time_min or DEFAULT_TIME_MIN
        params: dict[str, Any] = {
            "timeout_min": time_min,
            "name": "replicator-sweep",
        }
        if resources.cpus is not None:
            params["cpus_per_task"] = resources.cpus
        if resources.gpus is not None:
            params["gpus_per_node"] = resources.gpus
        if resources.mem_gb is not None:
            params["mem_gb"] = resources.mem_gb
        if self.cluster == "slurm":
            partition = resources.partition or self.partition
            if partition is not None:
                params["slurm_partition"] = partition
            if self.array_parallelism is not None:
                params["slurm_array_parallelism"] = self.array_parallelism
            # the preemption signal before the time limit: 90 s, less for short jobs
            delay = self.signal_delay_s or min(90, max(10, time_min * 60 // 5))
            params["slurm_signal_delay_s"] = delay
        for key, value in resources.extra.items():
            if key not in _NOT_SLURM_KEYS and key not in _RESOURCE_KEYS:
                params[key] = value
        return params

    # ------------------------------------------------------------------ running

    def run(self, jobs: Sequence[Job], on_change: Callable[[JobResult], None]) -> list[JobResult]:
        submitit = require("submitit", purpose="the Slurm sweep executor")
        self.folder.mkdir(parents=True, exist_ok=True)
        executor = submitit.AutoExecutor(
            folder=self.folder,
            cluster=self.cluster,
            # submitit counts the requeues after a time-out; preemptions requeue without limit
            slurm_max_num_timeout=self.max_requeue,
        )
        tasks = self._submit(executor, jobs)
        self._tasks = {job.index: task for job, task in zip(jobs, tasks)}
        results = {
            job.index: JobResult(job.index, JobState.QUEUED, None, task.job_id)
            for job, task in zip(jobs, tasks)
        }
        for result in results.values():
            on_change(copy_result(result))
        try:
            self._wait(jobs, tasks, results, on_change)
        except KeyboardInterrupt:
            for job, task in zip(jobs, tasks):
                if not results[job.index].state.final:
                    task.cancel(check=False)
                    change_state(
                        results[job.index], on_change, JobState.CANCELLED, None, "cancelled"
                    )
            raise
        return [results[job.index] for job in jobs]

    def cancel(self, index: int) -> bool:
        """Cancel job ``index`` of the running sweep (``scancel``); False if it is not known."""
        task = self._tasks.get(index)
        if task is None:
            return False
        task.cancel(check=False)
        return True

    def _submit(self, executor: Any, jobs: Sequence[Job]) -> list[Any]:
        """One job array per set of resources; the submitted tasks in the order of ``jobs``.
        Every array's options are checked before the first is submitted."""
        groups: dict[str, list[Job]] = {}
        for job in jobs:
            groups.setdefault(repr(job.resources), []).append(job)
        planned = [(group, self._parameters(group[0].resources)) for group in groups.values()]
        for _, params in planned:
            if self.cluster == "slurm" and "slurm_partition" in params:
                _check_partition(params["slurm_partition"], None)
            _set_parameters(executor, params)
        submitted: dict[int, Any] = {}
        for group, params in planned:
            _set_parameters(executor, params)
            try:
                tasks = executor.map_array(_SweepTask(), group)
            except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
                raise ExecutorUnavailableError(f"Slurm refused the sweep's jobs: {exc}") from exc
            for job, task in zip(group, tasks):
                submitted[job.index] = task
        return [submitted[job.index] for job in jobs]

    def _wait(
        self,
        jobs: Sequence[Job],
        tasks: Sequence[Any],
        results: dict[int, JobResult],
        on_change: Callable[[JobResult], None],
    ) -> None:
        while not all(r.state.final for r in results.values()):
            states = _squeue_states() if self.cluster == "slurm" else {}
            for job, task in zip(jobs, tasks):
                result = results[job.index]
                if result.state.final:
                    continue
                if task.paths.result_pickle.exists():
                    state, code, message = _outcome(task)
                    change_state(result, on_change, state, code, message)
                    continue
                cluster_state = states.get(task.job_id) or _local_state(task, self.cluster)
                _follow(result, cluster_state, task, on_change)
            time.sleep(self.poll_s)


_RESOURCE_KEYS = frozenset({"partition", "time_min", "gpus", "mem_gb", "cpus"})


def _follow(
    result: JobResult, cluster_state: str, task: Any, on_change: Callable[[JobResult], None]
) -> None:
    """Move ``result`` along what the cluster says of a task that has no result file yet."""
    if cluster_state in _QUEUED:
        change_state(result, on_change, JobState.QUEUED, None, None)
    elif cluster_state in _RUNNING:
        change_state(result, on_change, JobState.RUNNING, None, None)
    elif cluster_state in _CANCELLED or cluster_state.startswith("CANCELLED"):
        change_state(result, on_change, JobState.CANCELLED, None, _log_tail(task, "cancelled"))
    elif cluster_state in ("UNKNOWN", ""):
        pass  # just submitted, or squeue forgot it: the result file decides
    elif not task.paths.result_pickle.exists():
        # failed, timed out, out of memory, node failure... without a result: the task died
        message = _log_tail(task, cluster_state.lower())
        change_state(result, on_change, JobState.FAILED, None, message)


def _set_parameters(executor: Any, params: dict[str, Any]) -> None:
    """submitit's options for the next array; a key it does not take is a UsageError."""
    try:
        executor.update_parameters(**params)
    except (ValueError, NameError, TypeError) as exc:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"The Slurm executor (submitit) refused an option of the `launcher:` section: "
            f"{cause.rstrip('.')}. Give sbatch options as slurm_* keys (slurm_account, slurm_qos, "
            "slurm_constraint, slurm_additional_parameters: {...})."
        ) from None


def _outcome(task: Any) -> tuple[JobState, int | None, str | None]:
    """The final state of a task from its result file."""
    try:
        code = int(task.result())
    except Exception as exc:  # the task's own error, as submitit reports it
        lines = str(exc).strip().splitlines()
        return JobState.FAILED, None, lines[-1] if lines else type(exc).__name__
    if code == 0:
        return JobState.COMPLETED, 0, None
    return JobState.FAILED, code, f"replicator run exited with code {code}"


def _log_tail(task: Any, what: str) -> str:
    path = Path(task.paths.stderr)
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"Slurm job {task.job_id} {what}"
    tail = f": {lines[-1]}" if lines else ""
    return f"Slurm job {task.job_id} {what} (log {path}){tail}"


def _local_state(task: Any, cluster: str) -> str:
    if cluster != "local":
        return "UNKNOWN"
    state = str(task.state)
    if state == "INTERRUPTED":
        return "CANCELLED"
    return "RUNNING" if state in ("RUNNING", "FINISHED") else state


def _squeue_states() -> dict[str, str]:
    """Every job and array task squeue still knows (finished ones for MinJobAge): id -> state."""
    try:
        done = subprocess.run(
            ["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T"],
            capture_output=True,
            text=True,
            timeout=SINFO_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, state = line.partition("|")
        states[job_id.strip()] = state.strip()
    return states


def _partitions() -> list[str]:
    """The cluster's partitions (``sinfo``); ExecutorUnavailableError saying why Slurm is not
    reachable."""
    hint = "Submit the sweep from a machine of the Slurm cluster, or use --executor local."
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=SINFO_TIMEOUT_S
        )
    except FileNotFoundError:
        raise ExecutorUnavailableError(
            f"Slurm is not reachable: the `sinfo` command is not installed here. {hint}"
        ) from None
    except subprocess.TimeoutExpired:
        raise ExecutorUnavailableError(
            f"Slurm is not reachable: `sinfo` did not answer within {SINFO_TIMEOUT_S:.0f} s "
            f"(is slurmctld running?). {hint}"
        ) from None
    if done.returncode != 0:
        cause = done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}"
        raise ExecutorUnavailableError(
            f"Slurm is not reachable: `sinfo` failed: {cause.splitlines()[-1]}. {hint}"
        )
    return [line.strip().rstrip("*") for line in done.stdout.splitlines() if line.strip()]


def _check_partition(partition: str, partitions: list[str] | None) -> None:
    known = _partitions() if partitions is None else partitions
    if partition not in known:
        raise UsageError(
            f"Slurm partition '{partition}' does not exist on this cluster; partitions: "
            f"{', '.join(known) or '(none)'}. Choose one with --partition or launcher.partition."
        )
