"""Optuna search: ask a trial, run it as a job, tell the study its metric; prune from metrics.

The study lives in the store next to the sweep's record (``experiments/NAME/sweeps/ID.optuna.db``,
SQLite), written by the submitting process only: jobs never touch it. Trials are asked in
batches as large as the executor's parallelism; every job shares the seed drawn from the sweep's
root, so trials differ only by their parameters.

Pruning reads what the jobs log: while a batch runs, the submitting process follows each job's
``metrics.jsonl`` (found through the run's ``seeding``), reports each new value of the metric to
its trial, and when the study's pruner (median) says so, stops the job (``Executor.cancel``) and
tells the study the trial was pruned. A job that logs no value of the metric fails its trial.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._util.deps import require
from .._util.io import read_json
from ..store import Store
from .executors.base import Executor, Job, JobResult, JobState
from .jobs import SweepOutcome, job_for
from .record import SweepRecord, job_index
from .spec import Point

__all__ = ["continue_study", "run_study"]

OnChange = Callable[[JobResult], None]
_WATCH_S = 0.1


def run_study(plan: Any, record: SweepRecord, *, on_change: OnChange) -> Any:
    """Create the sweep's study and run its ``trials`` trials (see :func:`submit`)."""
    optuna = _optuna()
    search = plan.request.spec.optuna
    storage = record.path.with_name(f"{record.id}.optuna.db")
    record.data["optuna"] = {"storage": storage.name, "study": record.id}
    record.save(plan.store)
    study = _study(optuna, record, storage, search, root=plan.root, trials=plan.size, create=True)
    return _drive(study, optuna, record, plan.request, plan.executor, plan.store, on_change)


def continue_study(
    record: SweepRecord, request: Any, executor: Executor, store: Store, on_change: OnChange
) -> Any:
    """Run the trials a study still lacks (``sweep resume``): its failed trials are replaced,
    and a trial left running by a submitter that died counts as failed."""
    optuna = _optuna()
    storage = record.path.with_name(str((record.data.get("optuna") or {}).get("storage")))
    study = _study(
        optuna,
        record,
        storage,
        request.spec.optuna,
        root=int(record.data["root"]),
        trials=request.spec.size,
        create=False,
    )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    record.data.update(state="running")
    record.save(store)
    return _drive(study, optuna, record, request, executor, store, on_change)


def _optuna() -> Any:
    optuna = require("optuna", purpose="replicator sweep --optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the library does not print
    return optuna


def _study(
    optuna: Any,
    record: SweepRecord,
    storage: Path,
    search: Any,
    *,
    root: int,
    trials: int,
    create: bool,
) -> Any:
    if not create and not storage.is_file():
        from ..errors import StoreError

        raise StoreError(f"The Optuna study of sweep {record.id} is missing: {storage}.")
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=max(1, min(5, trials // 5)))
        if search.prune
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        study_name=record.id,
        storage=f"sqlite:///{storage}",
        direction=search.direction,
        sampler=optuna.samplers.TPESampler(seed=root % 2**32),
        pruner=pruner,
        load_if_exists=not create,
    )


def _drive(
    study: Any,
    optuna: Any,
    record: SweepRecord,
    request: Any,
    executor: Executor,
    store: Store,
    on_change: OnChange,
) -> Any:
    search = request.spec.optuna
    space = request.spec.search_space()
    states = optuna.trial.TrialState
    finished = study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))
    remaining = request.spec.size - len(finished)
    batch = max(1, int(getattr(executor, "jobs", 1) or 1))
    seed = int((record.data.get("seeds") or [0])[0])
    results: list[JobResult] = []
    try:
        while remaining > 0:
            asked = [study.ask() for _ in range(min(batch, remaining))]
            remaining -= len(asked)
            trials: dict[int, Any] = {}
            jobs: list[Job] = []
            for trial in asked:
                values = [(d, d.suggest(trial)) for d in space]
                overrides = (*request.spec.fixed, *(d.override(v) for d, v in values))
                point = Point(len(record.data["jobs"]), overrides, seed, trial.number)
                record.data["jobs"].append(point.as_dict())
                trials[point.index] = trial
                jobs.append(
                    job_for(
                        request,
                        sweep_id=record.id,
                        experiment=record.experiment,
                        store=store,
                        point=point,
                    )
                )
            record.save(store)
            watcher = _PruneWatcher(store, record.id, search.metric, trials, executor, search.prune)
            watcher.start()
            try:
                batch_results = executor.run(jobs, on_change)
            finally:
                watcher.stop()
            for result in batch_results:
                _tell(study, states, record, trials[result.index], result, watcher, search.metric)
            results.extend(batch_results)
            record.save(store)
    except BaseException:
        record.data["state"] = "interrupted"
        record.save(store)
        raise
    record.data["state"] = "finished"
    record.data["optuna"] = {**record.data.get("optuna", {}), **_best(study, states)}
    record.save(store)
    return SweepOutcome(record, results)


def _tell(
    study: Any,
    states: Any,
    record: SweepRecord,
    trial: Any,
    result: JobResult,
    watcher: _PruneWatcher,
    metric: str,
) -> None:
    entry = next(j for j in record.data["jobs"] if j["index"] == result.index)
    if result.index in watcher.pruned:
        study.tell(trial, state=states.PRUNED)
        entry["state"] = "pruned"
        result.message = "pruned"
        return
    value = _final_value(watcher.run_dirs.get(result.index), metric)
    if result.state == JobState.COMPLETED and value is not None:
        study.tell(trial, value)
        entry["value"] = value
        return
    study.tell(trial, state=states.FAIL)
    if result.state == JobState.COMPLETED:
        result.state = JobState.FAILED
        result.message = f"the run logged no value of '{metric}'"


def _best(study: Any, states: Any) -> dict[str, Any]:
    if not study.get_trials(deepcopy=False, states=(states.COMPLETE,)):
        return {}
    best = study.best_trial
    return {"best": {"trial": best.number, "value": best.value, "params": best.params}}


def _final_value(run_dir: Path | None, metric: str) -> float | None:
    """The metric's final value: the run's summary, else the last value it logged."""
    if run_dir is None:
        return None
    try:
        value = read_json(run_dir / "summary.json").get(metric)
    except (OSError, ValueError, AttributeError):
        value = None
    if _is_number(value):
        return float(value)
    last = None
    for _, logged in _read_metric(run_dir / "metrics.jsonl", metric, 0)[0]:
        last = logged
    return last


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _read_metric(path: Path, metric: str, offset: int) -> tuple[list[tuple[int, float]], int]:
    """(step, value) of ``metric`` in complete lines of ``path`` after byte ``offset``, and the
    offset after them (a line still being written is read next time)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    found = []
    for line in data[:end].splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or row.get("key") != metric:
            continue
        value, step = row.get("value"), row.get("step")
        if isinstance(value, (int, float)) and _is_number(value) and isinstance(step, int):
            found.append((step, float(value)))
    return found, offset + end


class _PruneWatcher:
    """Follows the running jobs' metrics, reports them to their trials, prunes (a thread)."""

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        metric: str,
        trials: dict[int, Any],
        executor: Executor,
        prune: bool,
    ) -> None:
        self.store = store
        self.sweep_id = sweep_id
        self.metric = metric
        self.trials = trials
        self.executor = executor
        self.prune = prune
        self.pruned: set[int] = set()
        self.run_dirs: dict[int, Path] = {}
        self._offsets: dict[int, int] = {}
        self._reported: dict[int, set[int]] = {}
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweep-pruner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._look()  # the run directories of jobs that ended between two looks

    def _loop(self) -> None:
        while not self._stop.wait(_WATCH_S):
            self._look()
            if self.prune:
                for index in list(self.run_dirs):
                    self._follow(index)

    def _look(self) -> None:
        """Map each job of the batch to its run directory (new directories only)."""
        if len(self.run_dirs) == len(self.trials):
            return
        for run_dir in self.store.run_dirs():
            if run_dir.name in self._seen:
                continue
            index = job_index(run_dir, self.sweep_id)
            if (run_dir / "run.json").is_file():
                self._seen.add(run_dir.name)
            if index in self.trials:
                self.run_dirs[index] = run_dir

    def _follow(self, index: int) -> None:
        if index in self.pruned:
            return
        path = self.run_dirs[index] / "metrics.jsonl"
        values, self._offsets[index] = _read_metric(path, self.metric, self._offsets.get(index, 0))
        if not values:
            return
        trial = self.trials[index]
        reported = self._reported.setdefault(index, set())
        for step, value in values:
            if step not in reported:  # a step logged twice is reported once
                reported.add(step)
                trial.report(value, step)
        if trial.should_prune():
            self.pruned.add(index)
            self.executor.cancel(index)
