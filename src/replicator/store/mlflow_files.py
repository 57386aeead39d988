"""Reading the metrics an MLflow tracking store on disk holds, without importing MLflow.

MLflow 3 writes to ``sqlite:///mlflow.db`` by default (a SQLite database in the working
directory); with a ``file:`` tracking URI (``./mlruns``, MLflow 2's default, allowed in MLflow 3
with ``MLFLOW_ALLOW_FILE_STORE=true``) it writes a folder per run::

    mlruns/<experiment id>/meta.yaml                     name: <experiment name>
    mlruns/<experiment id>/<run id>/meta.yaml            run_name, start_time, end_time, status
    mlruns/<experiment id>/<run id>/metrics/<key>        one line per value: "<ms> <value> <step>"
    mlruns/<experiment id>/<run id>/params/<key>         the value

(a key with ``/`` is a path below ``metrics/``). Both are read here: the database with
:mod:`sqlite3` opened read-only (its ``runs``, ``experiments``, ``metrics`` and ``params``
tables), the folders line by line.

``since`` (seconds since the epoch) limits a read to what was logged from then on: a run MLflow
started before ``since`` contributes only the values stamped at or after it, so continuing an
old MLflow run imports the new values only.

Damage is never an error: a metric file whose last line was cut by a kill, or a line that is no
``<ms> <value> <step>``, is read up to that line; a database that is not one, or whose tables are
not MLflow's, gives what could be read and :attr:`ToolRun.problem` says why.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .tensorboard import walk_outputs
from .tool_runs import Scalar, ToolRun

__all__ = [
    "find_mlflow_runs",
    "is_mlflow_database",
    "is_mlflow_run_dir",
    "mlflow_files_in",
    "read_mlflow_database",
    "read_mlflow_run_dir",
]

TOOL = "mlflow"

# MLflow's RunStatus numbers (file store) and names (database) as replicator statuses.
_STATUS = {
    "1": "running",
    "2": "running",
    "3": "completed",
    "4": "failed",
    "5": "interrupted",
    "RUNNING": "running",
    "SCHEDULED": "running",
    "FINISHED": "completed",
    "FAILED": "failed",
    "KILLED": "interrupted",
}
_DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SQLITE_MAGIC = b"SQLite format 3\x00"


def is_mlflow_run_dir(dirs: Iterable[str], files: Iterable[str]) -> bool:
    """Whether a folder with these directory and file names is a run of an MLflow file store."""
    return "meta.yaml" in files and "metrics" in dirs


def is_mlflow_database(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a SQLite file with MLflow's ``runs`` and ``metrics`` tables."""
    path = Path(path)
    if not path.name.endswith(_DATABASE_SUFFIXES):
        return False
    try:
        with open(path, "rb") as f:
            if f.read(16) != _SQLITE_MAGIC:
                return False
        with _connect(path) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except (OSError, sqlite3.Error):
        return False
    return {"runs", "metrics", "experiments"} <= tables


def find_mlflow_runs(
    root: str | os.PathLike[str],
    *,
    since: float | None = None,
    skip: Iterable[str | os.PathLike[str]] = (),
) -> tuple[list[Path], list[Path]]:
    """The MLflow run folders and databases under ``root`` changed at or after ``since``.

    Returns ``(run_dirs, databases)``, each sorted. A run folder counts as changed when a file of
    its ``metrics/`` (or its meta.yaml) was modified since ``since``.
    """
    run_dirs: list[Path] = []
    databases: list[Path] = []
    for folder, dirs, files in walk_outputs(root, skip=skip):
        found = mlflow_files_in(folder, dirs, files, since=since)
        run_dirs += found[0]
        databases += found[1]
    return sorted(run_dirs), sorted(databases)


def mlflow_files_in(
    folder: str, dirs: Iterable[str], files: Iterable[str], *, since: float | None = None
) -> tuple[list[Path], list[Path]]:
    """The MLflow run folder (``folder`` itself, or none) and databases among ``files`` of one
    folder of a walk, changed at or after ``since`` (if given): ``(run_dirs, databases)``."""
    run_dirs: list[Path] = []
    databases: list[Path] = []
    if is_mlflow_run_dir(dirs, files) and (since is None or _newest(Path(folder)) >= since):
        run_dirs.append(Path(folder))
    for name in files:
        if name.endswith(_DATABASE_SUFFIXES):
            path = Path(folder, name)
            if (since is None or _mtime(path) >= since) and is_mlflow_database(path):
                databases.append(path)
    return run_dirs, databases


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _newest(run_dir: Path) -> float:
    newest = _mtime(run_dir / "meta.yaml")
    for folder, _, files in os.walk(run_dir / "metrics"):
        for name in files:
            newest = max(newest, _mtime(Path(folder, name)))
    return newest


# ------------------------------------------------------------------------------ file store
def read_mlflow_run_dir(run_dir: str | os.PathLike[str], *, since: float | None = None) -> ToolRun:
    """The scalars of one run folder of an MLflow file store (``mlruns/<exp>/<run>``).

    Raises OSError when the folder cannot be read at all; damage inside it is never an error.
    """
    run_dir = Path(run_dir)
    meta, notes = _yaml(run_dir / "meta.yaml")
    experiment_meta, _ = _yaml(run_dir.parent / "meta.yaml")
    started = _seconds(meta.get("start_time"))
    cutoff = _cutoff(started, since)
    scalars: list[Scalar] = []
    problem = None
    metrics = run_dir / "metrics"
    for path in sorted(p for p in metrics.rglob("*") if p.is_file()):
        key = path.relative_to(metrics).as_posix()
        read, damage = _metric_file(path, key, cutoff)
        scalars += read
        if damage is not None and problem is None:
            problem = f"metrics/{key}: {damage}"
    scalars.sort(key=lambda s: (s[1], s[0]))
    params = {}
    for path in sorted(p for p in (run_dir / "params").rglob("*") if p.is_file()):
        try:
            params[path.relative_to(run_dir / "params").as_posix()] = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
    return ToolRun(
        tool=TOOL,
        path=run_dir,
        run_id=str(meta.get("run_id") or run_dir.name),
        name=_text(meta.get("run_name")),
        experiment=_text(experiment_meta.get("name")),
        scalars=scalars,
        params=params,
        started=started,
        ended=_seconds(meta.get("end_time")),
        status=_STATUS.get(str(meta.get("status"))),
        problem=problem,
        notes=notes,
    )


def _metric_file(path: Path, key: str, cutoff: float | None) -> tuple[list[Scalar], str | None]:
    """The values of one metric file, and where it is damaged (None when it is not)."""
    data = path.read_bytes()
    scalars: list[Scalar] = []
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if number == len(lines):
            if line.strip():  # MLflow ends every value with a newline: this one was cut
                return scalars, (
                    f"line {number} ends without a newline (a writer stopped in the middle of "
                    f"a write); imported the {len(scalars)} value(s) before it"
                )
            break
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) not in (2, 3):
                raise ValueError(f"{len(parts)} fields")
            millis, value = int(parts[0]), float(parts[1])
            step = int(parts[2]) if len(parts) == 3 else 0
        except ValueError:
            shown = line[:60].decode("utf-8", "replace")
            return scalars, (
                f"line {number} ({shown!r}) is not '<timestamp> <value> <step>'; imported the "
                f"{len(scalars)} value(s) before it"
            )
        if cutoff is None or millis >= cutoff * 1000:
            scalars.append((step, millis / 1000, key, value))
    return scalars, None


def _yaml(path: Path) -> tuple[dict[str, Any], tuple[str, ...]]:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return {}, (f"{path.name} could not be read ({exc}); the run's name is unknown",)
    return (loaded if isinstance(loaded, dict) else {}), ()


# -------------------------------------------------------------------------------- database
def read_mlflow_database(
    path: str | os.PathLike[str], *, since: float | None = None
) -> list[ToolRun]:
    """The runs of an MLflow SQLite database that logged or started at or after ``since``.

    A database that cannot be read (not a database, malformed, not MLflow's tables) gives the
    runs read before the failure; the last run's :attr:`ToolRun.problem` (or a single empty
    run's, when none was read) says why. Raises OSError when the file cannot be opened.
    """
    path = Path(path)
    runs: list[ToolRun] = []
    try:
        with _connect(path) as db:
            for row in _run_rows(db, since):
                runs.append(_database_run(db, path, row, since))
    except sqlite3.Error as exc:
        problem = (
            f"the database could not be read ({exc}): it is damaged or not an MLflow database "
            "of a version this reader knows; imported what was read before"
        )
        if runs:
            last = runs.pop()
            runs.append(_with_problem(last, problem))
        else:
            runs.append(ToolRun(tool=TOOL, path=path, run_id="", problem=problem))
    return runs


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise OSError(f"{path}: no such file")
    # read-only: the import must never change (or create) the user's database
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _run_rows(db: sqlite3.Connection, since: float | None) -> list[tuple[Any, ...]]:
    query = (
        "SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, e.name "
        "FROM runs r LEFT JOIN experiments e ON r.experiment_id = e.experiment_id"
    )
    if since is None:
        return db.execute(query + " ORDER BY r.start_time").fetchall()
    millis = int(since * 1000)
    return db.execute(
        query + " WHERE r.start_time >= ? OR EXISTS (SELECT 1 FROM metrics m WHERE "
        "m.run_uuid = r.run_uuid AND m.timestamp >= ?) ORDER BY r.start_time",
        (millis, millis),
    ).fetchall()


def _database_run(
    db: sqlite3.Connection, path: Path, row: tuple[Any, ...], since: float | None
) -> ToolRun:
    run_id, name, status, start, end, experiment = row
    started = _seconds(start)
    cutoff = _cutoff(started, since)
    millis = -(2**62) if cutoff is None else int(cutoff * 1000)
    scalars: list[Scalar] = []
    for key, value, timestamp, step, is_nan in db.execute(
        "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? AND "
        "timestamp >= ? ORDER BY timestamp, step",
        (run_id, millis),
    ):
        number = math.nan if is_nan else float(value)
        scalars.append((int(step), int(timestamp) / 1000, str(key), number))
    params = dict(db.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)))
    return ToolRun(
        tool=TOOL,
        path=path,
        run_id=str(run_id),
        name=_text(name),
        experiment=_text(experiment),
        scalars=scalars,
        params={str(k): v for k, v in params.items()},
        started=started,
        ended=_seconds(end),
        status=_STATUS.get(str(status)),
    )


def _with_problem(run: ToolRun, problem: str) -> ToolRun:
    from dataclasses import replace

    return replace(run, problem=problem)


# ----------------------------------------------------------------------------------- common
def _cutoff(started: float | None, since: float | None) -> float | None:
    """The earliest wall time to import: everything of a run started since ``since``."""
    if since is None or (started is not None and started >= since):
        return None
    return since


def _seconds(millis: Any) -> float | None:
    try:
        return int(millis) / 1000 if millis is not None else None
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
