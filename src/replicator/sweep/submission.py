"""Plan, submit and resume a sweep: every check first, then the record, then the executor.

:func:`plan_sweep` does everything that can refuse a sweep (a key the config lacks, an unknown
placeholder in the command, an empty or too large sweep, an executor that is missing or cannot
be reached) before anything exists. :func:`submit` writes the sweep's record and hands the jobs
to the executor; :func:`resume` hands it again the jobs whose newest run failed (or crashed, or
was interrupted) and those that never ran.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._util.deps import require
from ..config import apply_overrides, load_config, to_container
from ..errors import UsageError
from ..record.command import expand_command
from ..record.seeding import check_seed, draw_seeds
from ..redact import REDACTED, redact_argv
from ..store import Store, StoreLike, new_run_id
from .executors.base import Executor, Job, JobResult, Resources, get_executor
from .jobs import SweepOutcome, SweepRequest, job_for
from .record import SweepRecord, find_sweep, job_statuses, new_record
from .spec import DEFAULT_MAX_JOBS, Point, SweepSpec

__all__ = [
    "SweepOutcome",
    "SweepPlan",
    "SweepRequest",
    "TooManyJobsError",
    "plan_sweep",
    "resume",
    "submit",
]

OnChange = Callable[[JobResult], None]


class TooManyJobsError(UsageError):
    """The sweep has more jobs than ``sweep_max_jobs`` and was not confirmed (``--yes``)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The sweep has {size} jobs, more than sweep_max_jobs ({limit}). Confirm with --yes, "
            "or raise 'sweep_max_jobs' in replicator.yaml."
        )
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep, ready to submit: its id, experiment, seeds and (grid, random) points."""

    request: SweepRequest
    id: str
    experiment: str
    root: int
    seeds: tuple[int, ...]
    points: tuple[Point, ...]  # empty for Optuna, whose points come one trial at a time
    executor: Executor
    store: Store

    @property
    def size(self) -> int:
        return self.request.spec.size


def plan_sweep(
    request: SweepRequest,
    *,
    store: StoreLike = None,
    max_jobs: int | None = None,
    confirmed: bool = False,
) -> SweepPlan:
    """Check ``request`` and draw its points; raise, naming the value at fault, on bad input.

    ``max_jobs`` (default ``sweep_max_jobs`` of replicator.yaml, else 1000) is the size above
    which the sweep needs ``confirmed``."""
    store = Store.coerce(store)
    if not request.command:
        raise UsageError(
            "No command to sweep. Put it after '--', e.g. "
            "replicator sweep --set optim.lr=0.1,0.01 -- python train.py"
        )
    spec = request.spec
    if spec.optuna is not None:
        require("optuna", purpose="replicator sweep --optuna")
    if spec.size == 0:
        raise UsageError("The sweep is empty: it has no jobs to run.")
    limit = max_jobs or store.settings.sweep_max_jobs or DEFAULT_MAX_JOBS
    if spec.size > limit and not confirmed:
        raise TooManyJobsError(spec.size, limit)
    config_path = request.config_path
    if config_path is not None and request.cwd is not None and not os.path.isabs(config_path):
        config_path = os.path.join(request.cwd, config_path)
    if config_path is not None:
        config_path = str(Path(config_path).resolve())
    root, seeds = draw_seeds(spec.seeds, root=_root(request.seed_root))
    points = () if spec.optuna is not None else tuple(spec.points(root=root, seeds=seeds))
    _check_config(request, config_path, spec, points)
    sweep_id = new_run_id()
    experiment = request.experiment or (Path(config_path).stem if config_path else "default")
    options = dict(request.executor_options)
    if request.executor == "slurm" and not options.get("folder"):
        # submitit's own files (pickled jobs, logs): beside the sweep's record
        options["folder"] = str(sweep_folder(store, experiment) / f"{sweep_id}.submitit")
    executor = get_executor(request.executor, **options)
    executor.check()
    executor.check_resources(request.resources)
    request = _with(request, config_path=config_path, executor_options=options)
    return SweepPlan(request, sweep_id, experiment, root, tuple(seeds), points, executor, store)


def sweep_folder(store: Store, experiment: str) -> Path:
    """``experiments/NAME/sweeps`` of ``store``, where the sweep's record is written."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment) or "default"
    return store.experiments_dir / safe / "sweeps"


def _root(seed_root: int | None) -> int | None:
    return check_seed(seed_root, where="--seed-root") if seed_root is not None else None


def _with(request: SweepRequest, **changes: Any) -> SweepRequest:
    from dataclasses import replace

    return replace(request, **changes)


def _check_config(
    request: SweepRequest, config_path: str | None, spec: SweepSpec, points: Sequence[Point]
) -> None:
    """Every key against the config (when one is given) and the command's placeholders, with
    the overrides of the first job (all jobs set the same keys)."""
    sample = list(points[0].overrides) if points else _first_optuna_overrides(spec)
    if config_path is not None:
        if not os.path.isfile(config_path):
            raise UsageError(f"Config file {config_path} does not exist (-c).")
        config = to_container(load_config(config_path, overrides=sample))
    else:
        config = apply_overrides({}, [o if o.startswith(("+", "~")) else "++" + o for o in sample])
    expand_command(
        request.command, {"seed": "0", "run_dir": "", "run_id": ""}, {**config, "seed": 0}
    )


def _first_optuna_overrides(spec: SweepSpec) -> list[str]:
    import random

    rng = random.Random(0)
    return [*spec.fixed, *(d.override(d.draw(rng)) for d in spec.search_space())]


# ---------------------------------------------------------------------------------- jobs
def _record_data(plan: SweepPlan) -> dict[str, Any]:
    request = plan.request
    return {
        "id": plan.id,
        "kind": "sweep",
        "experiment": plan.experiment,
        "command": redact_argv(list(request.command)),
        "config": request.config_path,
        "cwd": request.cwd or os.getcwd(),
        "spec": request.spec.texts,
        "root": str(plan.root),
        "seeds": list(plan.seeds),
        "executor": {"name": request.executor, "options": _plain(request.executor_options)},
        "resources": _plain(asdict(request.resources)),
        "metric_pattern": request.metric_pattern,
        "deterministic": request.deterministic,
        "jobs": [_job_entry(p) for p in plan.points],
    }


def _job_entry(point: Point) -> dict[str, Any]:
    entry = point.as_dict()
    entry["overrides"] = redact_argv(entry["overrides"])
    return entry


def _plain(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(k): (_plain(v) if isinstance(v, Mapping) else v)
        for k, v in data.items()
        if isinstance(v, (str, int, float, bool, type(None), Mapping, list))
    }


def submit(plan: SweepPlan, *, on_change: OnChange | None = None) -> SweepOutcome:
    """Record the sweep and run its jobs; blocks until every job is final.

    A KeyboardInterrupt stops every job (the executor interrupts them, so their runs stay
    readable), marks the sweep interrupted and propagates."""
    record = new_record(plan.store, _record_data(plan))
    record.save(plan.store)
    if plan.request.spec.optuna is not None:
        from .search import run_study

        return run_study(plan, record, on_change=on_change or _ignore)
    jobs = [
        job_for(
            plan.request, sweep_id=plan.id, experiment=plan.experiment, store=plan.store, point=p
        )
        for p in plan.points
    ]
    results = _run(plan.executor, jobs, record, plan.store, on_change or _ignore)
    return SweepOutcome(record, results)


def _run(
    executor: Executor, jobs: list[Job], record: SweepRecord, store: Store, on_change: OnChange
) -> list[JobResult]:
    try:
        results = executor.run(jobs, on_change)
    except BaseException:
        record.data["state"] = "interrupted"
        record.save(store)
        raise
    record.data["state"] = "finished"
    record.save(store)
    return results


def _ignore(result: JobResult) -> None:
    pass


# --------------------------------------------------------------------------------- resume
def resume(
    ref: str,
    *,
    store: StoreLike = None,
    executor: str | None = None,
    executor_options: Mapping[str, Any] | None = None,
    on_change: OnChange | None = None,
    on_plan: Callable[[list[int]], None] | None = None,
) -> SweepOutcome:
    """Run again the jobs of sweep ``ref`` that failed, crashed, were interrupted or never ran;
    each gets a new run with the job's index, overrides and seed. ``executor`` (default: the
    recorded one) may differ from the first submission's. ``on_plan`` gets the indices first."""
    store = Store.coerce(store)
    record = find_sweep(store, ref)
    if record.data.get("kind") != "sweep":
        raise UsageError(
            f"Sweep {record.id} was made by `replicator run --seeds`; continue its runs with "
            "`replicator run --resume RUN`."
        )
    if record.submitter_alive:
        raise UsageError(
            f"Sweep {record.id} is still running (pid {record.data.get('pid')} on "
            f"{record.data.get('host')}); resume it once it has ended."
        )
    recorded = record.data.get("executor") or {}
    name = executor or str(recorded.get("name") or "local")
    options = dict(executor_options or {}) or (
        dict(recorded.get("options") or {}) if name == recorded.get("name") else {}
    )
    request = _request_of(record, name, options)
    chosen = get_executor(name, **options)
    chosen.check()
    if request.spec.optuna is not None:
        from .search import continue_study

        return continue_study(record, request, chosen, store, on_change or _ignore)
    statuses = job_statuses(store, record)
    again = [s.index for s in statuses if s.state in ("failed", "missing")]
    if on_plan is not None:
        on_plan(again)
    by_index = {int(j["index"]): j for j in record.jobs}
    points = [_point(by_index[i], record) for i in again]
    record.data.update(
        state="running",
        pid=os.getpid(),
        host=socket.gethostname(),
        executor={"name": name, "options": _plain(options)},
    )
    record.save(store)
    jobs = [
        job_for(request, sweep_id=record.id, experiment=record.experiment, store=store, point=p)
        for p in points
    ]
    results = _run(chosen, jobs, record, store, on_change or _ignore) if jobs else []
    return SweepOutcome(record, results)


def _point(job: Mapping[str, Any], record: SweepRecord) -> Point:
    overrides = tuple(str(o) for o in job.get("overrides") or ())
    if any(REDACTED in o for o in overrides):
        raise UsageError(
            f"Job {job['index']} of sweep {record.id} has an override that held a secret and was "
            "recorded redacted; start a new sweep instead."
        )
    return Point(int(job["index"]), overrides, int(job["seed"]), job.get("trial"))


def _request_of(record: SweepRecord, executor: str, options: Mapping[str, Any]) -> SweepRequest:
    """The request a recorded sweep was submitted with (for resuming it)."""
    from .spec import OptunaSearch, parse_sweep

    data = record.data
    command = tuple(str(p) for p in data.get("command") or ())
    if REDACTED in command:
        raise UsageError(
            f"Sweep {record.id}'s recorded command held a secret and was redacted; "
            "start a new sweep instead."
        )
    texts = data.get("spec") or {}
    optuna = texts.get("optuna")
    spec = parse_sweep(
        texts.get("set") or (),
        texts.get("sample") or (),
        trials=texts.get("trials"),
        seeds=texts.get("seeds"),
        optuna=OptunaSearch(**optuna) if isinstance(optuna, dict) else None,
    )
    resources = data.get("resources") or {}
    return SweepRequest(
        command=command,
        spec=spec,
        config_path=data.get("config"),
        experiment=record.experiment,
        executor=executor,
        executor_options=options,
        resources=Resources(**resources) if isinstance(resources, dict) else Resources(),
        metric_pattern=data.get("metric_pattern"),
        deterministic=bool(data.get("deterministic")),
        cwd=data.get("cwd"),
    )
