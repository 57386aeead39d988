"""The Ray executor: each job of a sweep is one Ray task that runs the job's ``replicator run``
as a child process on the worker that got it.

``address`` is what ``ray.init`` takes: None starts a Ray instance on this machine for the
sweep, ``"auto"`` joins the cluster this machine belongs to, ``"HOST:PORT"`` a head's GCS
address, ``"ray://HOST:PORT"`` a Ray Client server. Each task asks for the job's resources
(``num_cpus``, ``num_gpus``, ``memory``); keys of the ``launcher:`` section that Ray's task
options take (``resources``, ``accelerator_type``, ``runtime_env``...) pass through.

A task streams two values: ``"started"`` when a worker picks it up (the job is running), then
the exit code. A cancelled task (Ctrl-C of the sweep, Optuna pruning) stops its launcher with
SIGTERM: the run reads ``interrupted`` and ``replicator sweep resume`` runs the job again.
"""

from __future__ import annotations

import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..._util.deps import require
from ...errors import ExecutorUnavailableError
from ._process import JobProcess, change_state, copy_result, job_command
from .base import Executor, Job, JobResult, JobState, Resources, job_environ

__all__ = ["RayExecutor"]

CONNECT_PROBE_S = 5.0
_STARTED = "started"
# task options of ray.remote that a `launcher:` section may set
_RAY_OPTIONS = frozenset(
    {
        "resources",
        "accelerator_type",
        "runtime_env",
        "scheduling_strategy",
        "max_retries",
        "retry_exceptions",
        "label_selector",
    }
)


def _run_job(job: Job) -> Iterator[Any]:
    """The Ray task: ``"started"``, then the exit code of the job's ``replicator run``."""
    yield _STARTED
    argv = job_command(job, restarted=False)
    if argv is None:
        yield (0, "")
        return
    with tempfile.TemporaryFile() as errors:
        # the launcher's own messages (a usage error before any run exists) come back with
        # the code; the job's output is in its run (stdout.log, stderr.log)
        process = JobProcess(argv, cwd=job.cwd, env=job_environ(job), stderr=errors)
        try:
            code = process.wait()
        except KeyboardInterrupt:  # ray.cancel: the run is recorded as interrupted
            process.terminate()
            raise
        errors.seek(0)
        tail = errors.read()[-4000:].decode(errors="replace")
    sys.stderr.write(tail)
    yield (code, tail)


class RayExecutor(Executor):
    """Jobs as Ray tasks on the cluster at ``address`` (None: a Ray instance started here)."""

    name: ClassVar[str] = "ray"

    def __init__(
        self, *, address: str | None = None, max_retries: int = 0, poll_s: float = 0.2
    ) -> None:
        self.address = address or None
        self.max_retries = max_retries
        self.poll_s = poll_s
        self._refs: dict[int, Any] = {}

    # ------------------------------------------------------------------ before submitting

    def check(self) -> None:
        """Connect to Ray (or start it, without an address); ExecutorUnavailableError with the
        cause when it cannot be reached. Nothing is submitted before this succeeds."""
        ray = require("ray", purpose="the Ray sweep executor")
        if ray.is_initialized():
            return
        where = f"at {self.address}" if self.address else "(a local instance)"
        hint = (
            "Start a cluster with `ray start --head` and give its address with --ray-address "
            "(or launcher.ray_address), or use --executor local."
        )
        if self.address not in (None, "auto", "local"):
            _probe(self.address, where, hint)
        options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        if self.address is None:
            options["include_dashboard"] = False
        try:
            ray.init(address=self.address, **options)
        except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError...
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExecutorUnavailableError(
                f"Ray is not reachable {where}: {cause}. {hint}"
            ) from exc

    def _options(self, resources: Resources) -> dict[str, Any]:
        options: dict[str, Any] = {
            "num_cpus": resources.cpus or 1,
            "max_retries": self.max_retries,
            "num_returns": "streaming",
        }
        if resources.gpus:
            options["num_gpus"] = resources.gpus
        if resources.mem_gb:
            options["memory"] = int(resources.mem_gb * 1024**3)
        for key, value in resources.extra.items():
            if key in _RAY_OPTIONS:
                options[key] = value
        return options

    # ------------------------------------------------------------------ running

    def run(self, jobs: Sequence[Job], on_change: Callable[[JobResult], None]) -> list[JobResult]:
        ray = require("ray", purpose="the Ray sweep executor")
        self.check()
        task = ray.remote(_run_job)
        results: dict[int, JobResult] = {}
        waiting: dict[Any, int] = {}
        for job in jobs:
            ref = task.options(**self._options(job.resources)).remote(job)
            self._refs[job.index] = ref
            waiting[ref] = job.index
            results[job.index] = JobResult(job.index, JobState.QUEUED, None, _task_id(ref))
            on_change(copy_result(results[job.index]))
        try:
            while waiting:
                ready, _ = ray.wait(list(waiting), num_returns=1, timeout=self.poll_s)
                for ref in ready:
                    index = waiting[ref]
                    if _advance(ray, ref, results[index], on_change):
                        del waiting[ref]
        except KeyboardInterrupt:
            for ref, index in waiting.items():
                ray.cancel(ref)
                change_state(results[index], on_change, JobState.CANCELLED, None, "cancelled")
            raise
        return [results[job.index] for job in jobs]

    def cancel(self, index: int) -> bool:
        """Cancel job ``index`` (``ray.cancel``; a running job's run reads interrupted)."""
        ref = self._refs.get(index)
        if ref is None:
            return False
        require("ray", purpose="the Ray sweep executor").cancel(ref)
        return True


def _advance(ray: Any, ref: Any, result: JobResult, on_change: Callable[[JobResult], None]) -> bool:
    """Read the next value a task streamed; True once the job is final."""
    try:
        value = ray.get(next(ref))
    except StopIteration:
        if not result.state.final:
            change_state(
                result, on_change, JobState.FAILED, None, "the Ray task ended without a code"
            )
        return True
    except ray.exceptions.TaskCancelledError:
        change_state(result, on_change, JobState.CANCELLED, None, "cancelled")
        return True
    except ray.exceptions.RayError as exc:
        lines = str(exc).strip().splitlines()
        change_state(result, on_change, JobState.FAILED, None, lines[-1] if lines else repr(exc))
        return True
    if value == _STARTED:
        change_state(result, on_change, JobState.RUNNING, None, None)
        return False
    code, tail = value
    if code == 0:
        change_state(result, on_change, JobState.COMPLETED, 0, None)
    else:
        last = [line for line in tail.splitlines() if line.strip()][-1:]
        message = f"replicator run exited with code {code}" + (f": {last[0]}" if last else "")
        change_state(result, on_change, JobState.FAILED, code, message)
    return True


def _task_id(ref: Any) -> str | None:
    """The Ray task id of a streaming task (through its completion ref)."""
    try:
        return str(ref.completed().task_id().hex())
    except Exception:  # another Ray version's generator: the id is only shown, never used
        return None


def _probe(address: str, where: str, hint: str) -> None:
    """A quick TCP connection to ``HOST:PORT`` or ``ray://HOST:PORT``: ray.init retries a dead
    address for a minute or more before it gives up."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    host, port = parts.hostname, parts.port
    if host is None or port is None:
        return  # not HOST:PORT; ray.init says what is wrong with it
    try:
        with socket.create_connection((host, port), timeout=CONNECT_PROBE_S):
            pass
    except OSError as exc:
        raise ExecutorUnavailableError(
            f"Ray is not reachable {where}: cannot connect to {host}:{port} ({exc.strerror or exc})"
            f". {hint}"
        ) from None
