"""Runs as pandas DataFrames: one row per run (``load_runs``) and tidy metric histories (``load_metrics``).

``load_runs`` reads the store through :meth:`Store.records` (the SQLite index keeps this fast) and
returns one row per run with these columns, in this order:

``id, experiment, name, status, seed, started, ended, duration, dir``
    ``started``/``ended`` are timezone-aware UTC timestamps, ``duration`` is in seconds.
``config.<dotted.key>``
    the resolved config, flattened (``{"optim": {"lr": 0.1}}`` -> ``config.optim.lr``); lists stay
    Python lists in one cell.
``summary.<key>``
    the final metrics from ``summary.json``; nested dicts are flattened the same way.

Metric columns carry the ``summary.`` prefix so that a metric can never collide with a config key
or a run attribute, and so that column names read like ``--where`` expressions
(``summary.test_acc > 0.9``). The statistics and report functions accept a bare metric name
(``test_acc``) and look up ``summary.test_acc``.

``load_metrics`` reads each run's ``metrics.jsonl`` (``{"step", "time", "key", "value"}`` per
line; non-finite values are written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``)
into a long DataFrame ``run, step, key, value, time``. Lines marked ``"superseded": true`` (steps
re-logged after a resume) are dropped unless asked for; a torn last line left by a crash is
skipped.

``run_notebook`` executes a parameterised notebook with papermill and records it as a run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util.deps import require
from ..config import flatten
from ..errors import UsageError
from .store import RunRecord, Store

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BASE_COLUMNS",
    "NotebookRun",
    "flatten",
    "load_metrics",
    "load_runs",
    "metric_column",
    "parse_parameters",
    "run_notebook",
]

BASE_COLUMNS = ("id", "experiment", "name", "status", "seed", "started", "ended", "duration", "dir")
# Statuses a finished, usable run has; everything else is excluded from statistics by default.
DEFAULT_STATUS = ("completed",)
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

Where = str | Callable[[dict[str, Any]], bool] | None


def metric_column(df: pd.DataFrame, metric: str) -> str:
    """The column holding ``metric``: itself if present, else ``summary.<metric>``."""
    if metric in df.columns:
        return metric
    prefixed = f"summary.{metric}"
    if prefixed in df.columns:
        return prefixed
    known = sorted(c.removeprefix("summary.") for c in df.columns if c.startswith("summary."))
    raise UsageError(
        f"No metric '{metric}' in these runs. Metrics recorded in summary.json: "
        f"{', '.join(known) if known else '(none)'}."
    )


def _select(
    *,
    experiment: str | Iterable[str] | None,
    where: Where,
    store: Store | str | os.PathLike[str] | None,
    status: str | Iterable[str] | None,
) -> list[RunRecord]:
    if store is None:
        store = Store.open()
    elif not isinstance(store, Store):
        store = Store(store)
    return store.select(experiment=experiment, status=status, where=where)


def load_runs(
    *,
    experiment: str | Iterable[str] | None = None,
    where: Where = None,
    store: Store | str | os.PathLike[str] | None = None,
    status: str | Iterable[str] | None = DEFAULT_STATUS,
) -> pd.DataFrame:
    """One row per run: run attributes, ``config.*`` and ``summary.*`` columns.

    ``status`` defaults to completed runs only; pass ``status=None`` for every run (running,
    failed, crashed and interrupted included). ``where`` is a ``--where`` expression
    (``"config.optim.lr < 0.1 and summary.test_acc > 0.8"``) or a callable taking
    ``RunRecord.as_dict()``. ``store`` is a :class:`Store` or a store directory; default: the
    store of the working directory.
    """
    pd = require("pandas", purpose="Loading runs as a DataFrame")

    records = _select(experiment=experiment, where=where, store=store, status=status)
    rows: list[dict[str, Any]] = []
    for r in records:
        row: dict[str, Any] = {
            "id": r.id,
            "experiment": r.experiment,
            "name": r.name,
            "status": r.status,
            "seed": r.seed,
            "started": r.started,
            "ended": r.ended,
            "duration": r.duration,
            "dir": str(r.dir),
        }
        if r.config:
            row.update(flatten(r.config, "config."))
        if r.summary:
            row.update(flatten(r.summary, "summary."))
        rows.append(row)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in BASE_COLUMNS})
    df = pd.DataFrame.from_records(rows)
    for col in ("started", "ended"):
        df[col] = pd.to_datetime(pd.to_numeric(df[col], errors="coerce"), unit="s", utc=True)
    df["seed"] = df["seed"].astype("Int64")
    # Stable column order: attributes, then config.*, then summary.* (each sorted).
    config_cols = sorted(c for c in df.columns if c.startswith("config."))
    summary_cols = sorted(c for c in df.columns if c.startswith("summary."))
    df = df[[*BASE_COLUMNS, *config_cols, *summary_cols]]
    return df


def _value(raw: Any) -> float:
    if isinstance(raw, str):
        return _NONFINITE.get(raw, math.nan)
    if raw is None:
        return math.nan
    return float(raw)


def read_metrics_file(
    path: str | os.PathLike[str], *, keys: Iterable[str] | None = None, superseded: bool = False
) -> list[tuple[int, str, float, float]]:
    """(step, key, value, time) tuples from one metrics.jsonl; torn or damaged lines skipped.

    Reads through :func:`replicator.record.metrics.read_metrics`, so lines that a resumed run
    superseded are dropped unless ``superseded``.
    """
    from ..record.metrics import read_metrics

    wanted = set(keys) if keys is not None else None
    out: list[tuple[int, str, float, float]] = []
    for entry in read_metrics(path, include_superseded=superseded):
        key = entry["key"]
        if wanted is not None and key not in wanted:
            continue
        try:
            out.append(
                (
                    int(entry.get("step", 0)),
                    key,
                    _value(entry.get("value")),
                    _value(entry.get("time")),
                )
            )
        except (TypeError, ValueError):
            continue
    return out


def load_metrics(
    *,
    experiment: str | Iterable[str] | None = None,
    where: Where = None,
    store: Store | str | os.PathLike[str] | None = None,
    status: str | Iterable[str] | None = DEFAULT_STATUS,
    runs: pd.DataFrame | Iterable[str] | None = None,
    keys: str | Iterable[str] | None = None,
    superseded: bool = False,
) -> pd.DataFrame:
    """Tidy per-step metrics: columns ``run, step, key, value, time``, one row per logged point.

    Select runs as in :func:`load_runs`, or pass ``runs`` (a DataFrame from ``load_runs`` or run
    ids/directories). ``keys`` limits the metric names read. ``superseded=True`` keeps points
    that a resumed run logged again (marked ``"superseded": true`` in the file).
    """
    pd = require("pandas", purpose="Loading runs as a DataFrame")

    if isinstance(keys, str):
        keys = [keys]
    dirs: list[tuple[str, Path]] = []
    if runs is not None:
        if isinstance(runs, pd.DataFrame):
            dirs = [(str(i), Path(d)) for i, d in zip(runs["id"], runs["dir"])]
        else:
            opened = store if isinstance(store, Store) else Store(store) if store else Store.open()
            for ref in runs:
                path = opened.resolve(str(ref))
                dirs.append((path.name, path))
    else:
        records = _select(experiment=experiment, where=where, store=store, status=status)
        dirs = [(r.id, r.dir) for r in records]
    run_col: list[str] = []
    steps: list[int] = []
    names: list[str] = []
    values: list[float] = []
    times: list[float] = []
    for run_id, run_dir in dirs:
        points = read_metrics_file(run_dir / "metrics.jsonl", keys=keys, superseded=superseded)
        run_col.extend([run_id] * len(points))
        for step, key, value, stamp in points:
            steps.append(step)
            names.append(key)
            values.append(value)
            times.append(stamp)
    return pd.DataFrame(
        {
            "run": pd.Series(run_col, dtype=object),
            "step": pd.Series(steps, dtype="int64"),
            "key": pd.Series(names, dtype=object),
            "value": pd.Series(values, dtype="float64"),
            "time": pd.Series(times, dtype="float64"),
        }
    )


# --------------------------------------------------------------------------- notebooks


@dataclass(frozen=True)
class NotebookRun:
    """A notebook executed as a run: its id and directory, the executed copy, the final status."""

    run_id: str
    run_dir: Path
    executed: Path
    output: Path | None
    status: str
    parameters: Mapping[str, Any]


def parse_parameters(pairs: Iterable[str]) -> dict[str, Any]:
    """``["lr=0.01", "model=mlp", "layers=[64, 64]"]`` -> typed values (parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(
                f"Parameter {pair!r} must be KEY=VALUE with KEY a Python name, e.g. -p lr=0.01."
            )
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def run_notebook(
    notebook: str | os.PathLike[str],
    *,
    parameters: Mapping[str, Any] | None = None,
    output: str | os.PathLike[str] | None = None,
    experiment: str | None = None,
    name: str | None = None,
    seed: int | None = None,
    kernel: str | None = None,
    store: Store | str | os.PathLike[str] | None = None,
) -> NotebookRun:
    """Execute a parameterised notebook with papermill and record it as a run.

    The run (opened with :func:`replicator.start`) records the parameters as its config, the
    seed, the environment and the code snapshot like any run; the executed notebook is kept in the
    run directory as ``notebook.ipynb`` (and copied to ``output`` if given), with ``notebook.json``
    naming the source and its hash. The kernel inherits ``REPLICATOR_RUN_DIR``, so a notebook
    that calls ``replicator.start()`` joins this run (and is seeded with its seed) and its
    ``run.log`` / ``run.summary`` land here; ``PYTHONHASHSEED`` is set to the seed for the kernel. A declared ``seed`` parameter that was not given receives the run's seed. A failing
    cell marks the run failed and raises :class:`ReplicatorError` naming the cell.
    """
    import shutil

    from .._util.io import atomic_write_json, read_json
    from ..config import ENV_RUN_DIR, ENV_SEED
    from ..errors import MissingDependencyError, ReplicatorError
    from ..record.outputs import hash_file
    from ..record.run import start

    try:
        import papermill as pm
    except ImportError as exc:
        raise MissingDependencyError("papermill", "notebook", purpose="Running notebooks") from exc
    source = Path(notebook)
    if not source.is_file():
        raise UsageError(f"Notebook {source} does not exist.")
    params = dict(parameters or {})
    try:
        declared = pm.inspect_notebook(str(source))
    except Exception as exc:  # a notebook that cannot be parsed is the user's input
        raise UsageError(f"{source} cannot be read as a notebook ({exc}).") from exc
    inject = dict(params)
    stem = source.stem
    # The notebook's code runs in the kernel, a fresh interpreter: seed it there (below), not here.
    run = start(
        params,
        experiment=experiment or stem,
        name=name or stem,
        seed=seed,
        store=store,
        seed_frameworks=False,
    )
    if "seed" in declared and "seed" not in params:
        inject["seed"] = run.seed
    executed = run.dir / "notebook.ipynb"
    saved = {k: os.environ.get(k) for k in (ENV_RUN_DIR, ENV_SEED, "PYTHONHASHSEED")}
    failure: BaseException | None = None
    with run:
        os.environ[ENV_RUN_DIR] = str(run.dir)
        os.environ[ENV_SEED] = str(run.seed)
        # set before the kernel's interpreter starts, as `replicator run` does for its child
        os.environ["PYTHONHASHSEED"] = str(run.seed)
        try:
            pm.execute_notebook(
                str(source),
                str(executed),
                parameters=inject,
                kernel_name=kernel,
                cwd=str(source.resolve().parent),
                progress_bar=False,
                log_output=False,
            )
        except pm.PapermillExecutionError as exc:
            failure = exc
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            # what the kernel recorded (run.summary inside the notebook) is kept, not overwritten
            try:
                kept = read_json(run.dir / "summary.json")
                if isinstance(kept, dict):
                    run.summary.update(kept)
            except (OSError, ValueError):
                pass
            atomic_write_json(
                run.dir / "notebook.json",
                {
                    "source": str(source.resolve()),
                    "source_blake3": hash_file(source),
                    "executed": executed.name,
                    "parameters": inject,
                    "kernel": kernel or "(notebook's own)",
                },
            )
        if failure is not None:
            run.finish("failed", error=str(failure).strip().splitlines()[0][:300])
    copied = None
    if output is not None and executed.is_file():
        copied = Path(output)
        shutil.copyfile(executed, copied)
    if failure is not None:
        cell = getattr(failure, "exec_count", None)
        raise ReplicatorError(
            f"Notebook {source} failed in cell {cell}: {getattr(failure, 'ename', '')}: "
            f"{getattr(failure, 'evalue', '')}. Run {run.id} is marked failed; the executed "
            f"notebook with the error is {executed}."
        ) from failure
    return NotebookRun(run.id, run.dir, executed, copied, "completed", inject)
