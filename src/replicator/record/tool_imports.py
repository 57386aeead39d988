"""MLflow and W&B runs on disk into replicator runs: after ``replicator run``
(:func:`import_tool_runs`, called by :mod:`replicator.record.imports`) and as runs of their own
(:func:`import_tool_directory`, behind ``replicator import mlflow DIR`` and ``replicator import
wandb DIR``).

The readers are in ``store/`` (:mod:`~replicator.store.mlflow_files`,
:mod:`~replicator.store.wandb_files`). Imported values are appended to the run's own
``metrics.jsonl`` like TensorBoard's (:mod:`replicator.record.tensorboard`): one line per value
with the tool's step and wall time and ``"source": "mlflow"`` or ``"wandb"``. A key the script
logged itself is not imported again. When the script wrote several runs of one tool (nested
MLflow runs, two ``wandb.init``), each key is prefixed with the tool run's name (``<name>/loss``)
so that their curves stay apart. The run's ``summary.json`` gains the last imported value of
each key it does not hold yet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.io import append_lines, atomic_write_json
from .._util.warnings import warn
from ..errors import MissingDependencyError, UsageError
from ..store import Store
from ..store.metrics import encode_value, metrics_path
from ..store.mlflow_files import find_mlflow_runs, read_mlflow_database, read_mlflow_run_dir
from ..store.tool_runs import ToolRun
from ..store.wandb_files import find_wandb_files, read_wandb_file
from .imported import add_to_summary, commit_only, own_keys
from .recorder import new_run, record_config, recordable_config, set_status

__all__ = [
    "ImportedToolRun",
    "ToolImport",
    "import_found",
    "import_tool_directory",
    "import_tool_runs",
    "read_mlflow",
    "read_wandb",
]

TOOLS = ("mlflow", "wandb")


@dataclass(frozen=True)
class ToolImport:
    """What :func:`import_tool_runs` put into a run from one tool."""

    tool: str
    runs: tuple[str, ...] = ()
    """The tool's run ids that were read."""
    files: tuple[Path, ...] = ()
    values: int = 0
    keys: tuple[str, ...] = ()
    already_logged: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    first: float | None = None
    last: float | None = None

    def as_dict(self, base: Path | None = None) -> dict[str, Any]:
        """The record of this import in run.json (``imports.mlflow``, ``imports.wandb``)."""

        def shown(path: Path) -> str:
            if base is not None and path.is_relative_to(base):
                return str(path.relative_to(base))
            return str(path)

        out: dict[str, Any] = {
            "runs": list(self.runs),
            "files": [shown(p) for p in self.files],
            "values": self.values,
            "keys": list(self.keys),
        }
        if self.already_logged:
            out["already_logged"] = list(self.already_logged)
        if self.problems:
            out["problems"] = list(self.problems)
        return out


# ---------------------------------------------------------------------------------- reading
def read_mlflow(
    root: str | os.PathLike[str],
    *,
    since: float | None = None,
    skip: Sequence[str | os.PathLike[str]] = (),
) -> tuple[list[ToolRun], list[Path], list[str]]:
    """The MLflow runs under ``root`` (file store folders and SQLite databases) with values
    logged at or after ``since``: ``(runs, files read, problems)``."""
    run_dirs, databases = find_mlflow_runs(root, since=since, skip=skip)
    runs: list[ToolRun] = []
    problems: list[str] = []
    for run_dir in run_dirs:
        try:
            runs.append(read_mlflow_run_dir(run_dir, since=since))
        except OSError as exc:
            problems.append(f"MLflow run {run_dir} cannot be read ({exc}); nothing was imported")
    for database in databases:
        try:
            runs += [r for r in read_mlflow_database(database, since=since) if r.run_id]
        except OSError as exc:
            problems.append(f"MLflow database {database} cannot be read ({exc})")
    return runs, run_dirs + databases, problems


def read_wandb(
    root: str | os.PathLike[str],
    *,
    since: float | None = None,
    skip: Sequence[str | os.PathLike[str]] = (),
) -> tuple[list[ToolRun], list[Path], list[str]]:
    """The W&B run files under ``root`` modified at or after ``since``: ``(runs, files,
    problems)``. Raises MissingDependencyError when there are files and wandb is missing."""
    files = find_wandb_files(root, since=since, skip=skip)
    runs: list[ToolRun] = []
    problems: list[str] = []
    for path in files:
        try:
            runs.append(read_wandb_file(path))
        except OSError as exc:
            problems.append(f"W&B run file {path} cannot be read ({exc}); nothing was imported")
    return runs, files, problems


def import_found(
    run_dir: str | os.PathLike[str],
    *,
    mlflow_dirs: Sequence[Path] = (),
    mlflow_databases: Sequence[Path] = (),
    wandb_files: Sequence[Path] = (),
    since: float | None = None,
) -> list[ToolImport]:
    """Import the MLflow and W&B files a walk of the working directory found (those changed
    since ``since``) into the run; one :class:`ToolImport` per tool that left files."""
    out: list[ToolImport] = []
    if mlflow_dirs or mlflow_databases:
        runs: list[ToolRun] = []
        problems: list[str] = []
        for run_dir_found in mlflow_dirs:
            try:
                runs.append(read_mlflow_run_dir(run_dir_found, since=since))
            except OSError as exc:
                problems.append(f"MLflow run {run_dir_found} cannot be read ({exc})")
        for database in mlflow_databases:
            try:
                runs += read_mlflow_database(database, since=since)
            except OSError as exc:
                problems.append(f"MLflow database {database} cannot be read ({exc})")
        problems += _problems([r for r in runs if not r.run_id])
        runs = [r for r in runs if r.run_id and (r.scalars or r.problem)]
        files = [*mlflow_dirs, *mlflow_databases]
        out.append(import_tool_runs(run_dir, "mlflow", runs, files=files, problems=problems))
    if wandb_files:
        runs, problems = [], []
        for path in wandb_files:
            try:
                runs.append(read_wandb_file(path))
            except (MissingDependencyError, ImportError):
                problems.append(
                    f"W&B run files were written ({path}, ...) but wandb is not installed here to "
                    "read them; install it (pip install 'replicator[wandb]') and run `replicator "
                    "import wandb DIR` to import them"
                )
                break
            except OSError as exc:
                problems.append(f"W&B run file {path} cannot be read ({exc})")
        out.append(import_tool_runs(run_dir, "wandb", runs, files=wandb_files, problems=problems))
    return out


def _problems(runs: Sequence[ToolRun]) -> list[str]:
    label = {"mlflow": "MLflow", "wandb": "W&B"}
    out = []
    for run in runs:
        where = f"{label.get(run.tool, run.tool)} run {run.run_id or '?'} ({run.path})"
        if run.problem is not None:
            out.append(f"{where}: {run.problem}")
        out += [f"{where}: {note}" for note in run.notes]
    return out


# ------------------------------------------------------------------------ into an open run
def import_tool_runs(
    run_dir: str | os.PathLike[str],
    tool: str,
    runs: Sequence[ToolRun],
    *,
    files: Sequence[Path] = (),
    problems: Sequence[str] = (),
) -> ToolImport:
    """Append the scalars of ``runs`` (all of one ``tool``) to the run's metrics.jsonl and its
    summary; damage is said in :attr:`ToolImport.problems` (the caller warns)."""
    run_dir = Path(run_dir)
    all_problems = [*problems, *_problems(runs)]
    if not runs:
        return ToolImport(tool=tool, files=tuple(files), problems=tuple(all_problems))
    logged = own_keys(metrics_path(run_dir), tool)
    several = len({run.run_id for run in runs}) > 1
    lines: list[str] = []
    last: dict[str, Any] = {}
    skipped: set[str] = set()
    tail = f', "source": "{tool}"}}'
    times: list[float] = []
    for run in runs:
        prefix = f"{run.name or run.run_id}/" if several else ""
        for step, wall, key, value in run.scalars:
            key = prefix + key
            if key in logged:
                skipped.add(key)
                continue
            value_json = json.dumps(encode_value(value))
            wall_json = json.dumps(wall if wall == wall else None)
            lines.append(
                f'{{"step": {step}, "time": {wall_json}, "key": {json.dumps(key)}, '
                f'"value": {value_json}{tail}'
            )
            last[key] = encode_value(value)
            if wall == wall:
                times.append(wall)
    if lines:
        append_lines(metrics_path(run_dir), lines)
    if last:
        add_to_summary(run_dir, last)
    return ToolImport(
        tool=tool,
        runs=tuple(run.run_id for run in runs),
        files=tuple(files),
        values=len(lines),
        keys=tuple(last),
        already_logged=tuple(sorted(skipped)),
        problems=tuple(all_problems),
        first=min(times) if times else None,
        last=max(times) if times else None,
    )


# ------------------------------------------------- replicator import mlflow | wandb DIR
@dataclass(frozen=True)
class ImportedToolRun:
    """One run :func:`import_tool_directory` created from one run of another tool."""

    run_id: str
    dir: Path
    source: Path
    tool_run: str
    imported: ToolImport = field(default_factory=lambda: ToolImport(tool=""))


_READERS: dict[str, Callable[..., tuple[list[ToolRun], list[Path], list[str]]]] = {
    "mlflow": read_mlflow,
    "wandb": read_wandb,
}
_WHAT = {
    "mlflow": "MLflow runs (an mlruns/ file store, or an mlflow.db database)",
    "wandb": "W&B run files (wandb/*/run-*.wandb)",
}


def import_tool_directory(
    tool: str,
    directory: str | os.PathLike[str],
    *,
    store: Store,
    experiment: str | None = None,
) -> list[ImportedToolRun]:
    """One run per run of ``tool`` ("mlflow" or "wandb") recorded under ``directory``.

    ``directory`` may also be an MLflow database file. The run takes the tool run's name, its
    status, start and end, its params (MLflow) or config (W&B) as config, secrets redacted; its
    experiment is ``experiment``, else the tool's experiment (project), else the directory's
    name. The code is not captured, except the commit and branch when ``directory`` is inside a
    git repository. Damage is imported up to the damage, with a RuntimeWarning. Raises
    :class:`UsageError` when ``directory`` does not exist or holds no run of ``tool``.
    """
    if tool not in _READERS:
        raise UsageError(f"Unknown tool {tool!r}: replicator imports {', '.join(TOOLS)}.")
    root = Path(directory).resolve()
    if tool == "mlflow" and root.is_file():
        runs = read_mlflow_database(root)
        problems: list[str] = []
        runs = [r for r in runs if r.run_id or r.problem]
        base = root.parent
    elif root.is_dir():
        runs, _, problems = _READERS[tool](root, skip=[store.root])
        base = root
    else:
        raise UsageError(f"{directory}: no such directory. Give the folder of your {_WHAT[tool]}.")
    for problem in problems:
        warn(problem, RuntimeWarning)
    readable = [r for r in runs if r.run_id]
    for problem in _problems([r for r in runs if not r.run_id]):
        warn(problem, RuntimeWarning)
    if not readable:
        raise UsageError(f"{directory}: no {_WHAT[tool]} in it or below it.")
    code = commit_only(base, wrote="logged the values")
    return [_import_one(tool, run, base, store, experiment, code) for run in readable]


def _import_one(
    tool: str,
    run: ToolRun,
    base: Path,
    store: Store,
    experiment: str | None,
    code: dict[str, Any],
) -> ImportedToolRun:
    config = recordable_config(run.params)
    run_id, run_dir, meta = new_run(
        store,
        experiment=experiment or run.experiment or base.name or tool,
        name=run.name or run.run_id,
        seed=0,
        command=["replicator", "import", tool, str(base)],
        cwd=run.path if run.path.is_dir() else run.path.parent,
        launcher="import",
        seeding={"source": f"unknown (imported from {tool})"},
        extra={
            "source": {"tool": tool, "dir": str(run.path), "run": run.run_id},
            "code": code,
            "config": config,
        },
    )
    imported = import_tool_runs(run_dir, tool, [run], files=[run.path])
    for problem in imported.problems:
        warn(problem, RuntimeWarning)
    atomic_write_json(run_dir / "code.json", code, fsync=False)
    if run.params:
        meta["config_hash"] = record_config(run_dir, run.params)
    meta["imports"] = {tool: imported.as_dict(base)}
    started = run.started if run.started is not None else imported.first
    ended = run.ended if run.ended is not None else imported.last
    if started is not None:
        meta["started"] = meta["created"] = started
    # a tool run still 'running' on disk never ended: its process died
    status = "crashed" if run.status == "running" else run.status or "completed"
    set_status(run_dir, meta, status)
    if started is not None and ended is not None:
        # the run lasted as long as the tool recorded, not as long as the import
        meta["ended"], meta["duration_s"] = ended, round(max(ended - started, 0.0), 3)
        atomic_write_json(run_dir / "run.json", meta)
    return ImportedToolRun(run_id, run_dir, run.path, run.run_id, imported)
