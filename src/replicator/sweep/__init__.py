"""Sweeps: grids, random and Optuna search, run by local, Slurm or Ray executors.

A sweep runs one ``replicator run`` per job (its own process, its own run) and is recorded
under its experiment (``experiments/NAME/sweeps/ID.json``)::

    from replicator.sweep import SweepRequest, parse_sweep, plan_sweep, submit

    spec = parse_sweep(["optim.lr=0.1,0.01", "model=small,big"], seeds=2)
    plan = plan_sweep(SweepRequest(("python", "train.py"), spec, config_path="cfg.yaml",
                                   executor_options={"jobs": 2}))
    outcome = submit(plan)

The command line is ``replicator sweep`` (docs/sweeps.md).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .executors.base import (
        EXECUTORS,
        Executor,
        Job,
        JobResult,
        JobState,
        Resources,
        get_executor,
        job_environ,
    )
    from .record import JobStatus, SweepRecord, find_sweep, job_statuses, list_sweeps, sweep_runs
    from .spec import (
        DEFAULT_MAX_JOBS,
        Axis,
        Distribution,
        OptunaSearch,
        Point,
        SweepSpec,
        looks_like_sweep,
        parse_sweep,
        render_value,
    )
    from .submission import (
        SweepOutcome,
        SweepPlan,
        SweepRequest,
        TooManyJobsError,
        plan_sweep,
        resume,
        submit,
    )

# PEP 562: a Slurm or Ray task that runs one job imports this package; it loads only what
# it uses (the executors, the spec, the record and Optuna are imported on first use).
_LAZY: dict[str, str] = {
    "Axis": ".spec",
    "DEFAULT_MAX_JOBS": ".spec",
    "Distribution": ".spec",
    "EXECUTORS": ".executors.base",
    "Executor": ".executors.base",
    "Job": ".executors.base",
    "JobResult": ".executors.base",
    "JobState": ".executors.base",
    "JobStatus": ".record",
    "OptunaSearch": ".spec",
    "Point": ".spec",
    "Resources": ".executors.base",
    "SweepOutcome": ".submission",
    "SweepPlan": ".submission",
    "SweepRecord": ".record",
    "SweepRequest": ".submission",
    "SweepSpec": ".spec",
    "TooManyJobsError": ".submission",
    "find_sweep": ".record",
    "get_executor": ".executors.base",
    "job_environ": ".executors.base",
    "job_statuses": ".record",
    "list_sweeps": ".record",
    "looks_like_sweep": ".spec",
    "parse_sweep": ".spec",
    "plan_sweep": ".submission",
    "render_value": ".spec",
    "resume": ".submission",
    "submit": ".submission",
    "sweep_runs": ".record",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_MAX_JOBS",
    "EXECUTORS",
    "Axis",
    "Distribution",
    "Executor",
    "Job",
    "JobResult",
    "JobState",
    "JobStatus",
    "OptunaSearch",
    "Point",
    "Resources",
    "SweepOutcome",
    "SweepPlan",
    "SweepRecord",
    "SweepRequest",
    "SweepSpec",
    "TooManyJobsError",
    "find_sweep",
    "get_executor",
    "job_environ",
    "job_statuses",
    "list_sweeps",
    "looks_like_sweep",
    "parse_sweep",
    "plan_sweep",
    "render_value",
    "resume",
    "submit",
    "sweep_runs",
]
