"""What the parts of a sweep share: the request, one job's ``replicator run``, the outcome."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._protocol import REPLICATOR_STORE, REPLICATOR_SWEEP_JOB
from ..store import Store
from .executors.base import Job, JobResult, JobState, Resources
from .record import SweepRecord
from .spec import Point, SweepSpec

__all__ = ["SweepOutcome", "SweepRequest", "job_for"]


@dataclass(frozen=True)
class SweepRequest:
    """What ``replicator sweep`` was asked: the command, the search, where and how to run."""

    command: tuple[str, ...]
    spec: SweepSpec
    config_path: str | None = None
    experiment: str | None = None
    executor: str = "local"
    executor_options: Mapping[str, Any] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    seed_root: int | None = None
    metric_pattern: str | None = None
    deterministic: bool = False
    cwd: str | None = None


@dataclass(frozen=True)
class SweepOutcome:
    """What a submitted (or resumed) sweep did: its record and each job's final result."""

    record: SweepRecord
    results: list[JobResult]

    @property
    def ok(self) -> bool:
        return all(r.state == JobState.COMPLETED or r.message == "pruned" for r in self.results)


def job_for(
    plan_request: SweepRequest,
    *,
    sweep_id: str,
    experiment: str,
    store: Store,
    point: Point,
) -> Job:
    """The ``replicator run`` of one point: its seed, experiment, config and overrides."""
    request = plan_request
    argv = [sys.executable, "-m", "replicator", "run", "--seed", str(point.seed)]
    argv += ["--experiment", experiment]
    if request.config_path:
        argv += ["-c", request.config_path]
    for override in point.overrides:
        argv += ["--set", override]
    if request.metric_pattern:
        argv += ["--metric-pattern", request.metric_pattern]
    if request.deterministic:
        argv.append("--deterministic")
    argv += ["--", *request.command]
    env = {
        **REPLICATOR_SWEEP_JOB.to_environ((sweep_id, point.index)),
        **REPLICATOR_STORE.to_environ(store.root),
    }
    return Job(
        sweep_id=sweep_id,
        index=point.index,
        argv=tuple(argv),
        cwd=request.cwd or os.getcwd(),
        env=env,
        resources=request.resources,
    )
