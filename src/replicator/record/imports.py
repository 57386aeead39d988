"""What an unmodified script left for other tools, read into its run when it ends.

:func:`import_after_run` is called by the launcher when the command of ``replicator run`` has
ended. It looks only at what was written since the run started, under the run's working
directory:

- TensorBoard event files (or those under ``--tensorboard-dir``): their scalars join the run's
  metrics (:mod:`replicator.record.tensorboard`), so a script that logs with a
  ``SummaryWriter`` gets its curves in ``replicator show`` without a ``--metric-pattern``;
- MLflow's stores (an ``mlflow.db`` SQLite database, MLflow 3's default, or an ``mlruns/`` file
  store) and W&B's run files (``wandb/*/run-*.wandb``, offline or online): their values join the
  run's metrics with ``"source": "mlflow"`` / ``"wandb"`` (:mod:`replicator.record.tool_imports`);
- Hydra's ``.hydra/`` folders (:mod:`replicator.record.hydra`): a ``@hydra.main`` app's composed
  config becomes the run's config, and a multirun's jobs become runs of their own.

Nothing here stops a run from being recorded: damaged files are imported up to the damage, with
a warning (Python's ``warnings``, shown by the CLI) and a note in run.json.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.warnings import warn
from ..errors import ReplicatorError
from ..mirror.state import read_mirrors
from ..redact import secret_values
from ..store.mlflow_files import mlflow_files_in
from ..store.tensorboard import event_files_in, find_event_files, walk_outputs
from ..store.wandb_files import wandb_files_in
from .hydra import HydraJob, hydra_job_in, order_jobs, record_hydra_job, record_multirun
from .recorder import recordable_config
from .tensorboard import TensorBoardImport, import_event_files
from .tool_imports import ToolImport, import_found

__all__ = ["ImportSummary", "import_after_run"]


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_after_run` found and recorded; :meth:`apply` puts it into run.json."""

    cwd: Path
    tensorboard: TensorBoardImport = field(default_factory=TensorBoardImport)
    hydra: HydraJob | None = None
    """The Hydra job of a single run (not a multirun), recorded in ``config/hydra/``."""
    config: dict[str, Any] | None = None
    """The run's config now (Hydra's composed config), None when unchanged."""
    config_hash: str | None = None
    multirun: tuple[dict[str, Any], ...] = ()
    """One entry per multirun job: ``{job, overrides, dir, run}``."""
    tools: tuple[ToolImport, ...] = ()
    """What was imported from MLflow and W&B (one entry per tool that left files)."""
    warnings: tuple[str, ...] = ()

    def apply(self, meta: dict[str, Any]) -> None:
        """Record the import in a run's ``run.json`` fields (``meta``, written by the caller)."""
        if self.tensorboard.files:
            meta.setdefault("imports", {})["tensorboard"] = self.tensorboard.as_dict(self.cwd)
        for tool in self.tools:
            meta.setdefault("imports", {})[tool.tool] = tool.as_dict(self.cwd)
        if self.hydra is not None:
            meta["hydra"] = self.hydra.as_dict(self.cwd)
        if self.config is not None:
            meta["config"] = self.config
            meta["config_hash"] = self.config_hash
        if self.multirun:
            meta["hydra_multirun"] = list(self.multirun)


def import_after_run(
    run_dir: str | os.PathLike[str],
    *,
    cwd: str | os.PathLike[str],
    started: float,
    tensorboard_dir: str | os.PathLike[str] | None = None,
    status: str = "completed",
) -> ImportSummary:
    """Import what the run's command wrote for TensorBoard, MLflow, W&B and Hydra since
    ``started``.

    ``tensorboard_dir`` (relative to ``cwd``) narrows the search for event files; by default it
    is ``cwd``. ``status`` is the run's final status, which the runs of a Hydra multirun's jobs
    take. Damage in a file is warned about (RuntimeWarning) and noted, never raised.
    """
    run_dir, cwd = Path(run_dir), Path(cwd).resolve()
    store_root = run_dir.parent.parent
    # what the run's own mirrors wrote (a TensorBoard log_dir under cwd, ...) is not the command's
    mirrored = _mirrored_paths(run_dir)
    skip = [store_root, *mirrored]
    warnings: list[str] = []
    jobs: list[HydraJob] = []
    events: list[Path] = []
    mlflow_dirs: list[Path] = []
    databases: list[Path] = []
    wandb_files: list[Path] = []
    try:
        # One walk of the working directory finds both Hydra's jobs and the event files.
        for folder, dirs, files in walk_outputs(cwd, skip=skip):
            job = hydra_job_in(folder, dirs, since=started)
            if job is not None:
                jobs.append(job)
            if tensorboard_dir is None:
                events += event_files_in(folder, files, since=started)
            found = mlflow_files_in(folder, dirs, files, since=started)
            mlflow_dirs += found[0]
            databases += found[1]
            wandb_files += wandb_files_in(folder, files, since=started)
        jobs = order_jobs(jobs)
    except OSError as exc:  # an unreadable working directory costs the import, not the run
        warnings.append(f"Hydra's outputs under {cwd} could not be searched: {exc}")
    multirun = [j for j in jobs if j.multirun]
    per_job: dict[Path, list[Path]] = {j.dir: [] for j in multirun}
    tensorboard = TensorBoardImport()
    try:
        if tensorboard_dir is not None:
            events = find_event_files(cwd / tensorboard_dir, since=started, skip=skip)
        own: list[Path] = []
        for path in sorted(events):
            job_dir = next((d for d in per_job if path.is_relative_to(d)), None)
            (per_job[job_dir] if job_dir is not None else own).append(path)
        tensorboard = import_event_files(run_dir, own)
        warnings += tensorboard.problems
    except OSError as exc:
        warnings.append(f"TensorBoard event files could not be imported: {exc}")
    tools: list[ToolImport] = []
    try:
        tools = import_found(
            run_dir,
            mlflow_dirs=mlflow_dirs,
            mlflow_databases=[d for d in databases if d.resolve() not in mirrored],
            wandb_files=wandb_files,
            since=started,
        )
        warnings += [p for tool in tools for p in tool.problems]
    except Exception as exc:  # another tool's files never cost the run its record
        warnings.append(f"MLflow or W&B files could not be imported ({type(exc).__name__}: {exc})")
    single = [j for j in jobs if not j.multirun]
    hydra = max(single, key=_written) if single else None
    config = config_hash = None
    listed: list[dict[str, Any]] = []
    try:
        if hydra is not None:
            # a script that recorded its own config (replicator.start(cfg)) keeps it
            as_config = not (run_dir / "config" / "script.json").exists()
            config_hash = record_hydra_job(run_dir, hydra, as_config=as_config)
            if config_hash is not None:
                known = secret_values(os.environ, hydra.overrides)
                config = recordable_config(hydra.config, secrets=known)
        if multirun:
            listed = record_multirun(run_dir, multirun, cwd=cwd, status=status, tensorboard=per_job)
            warnings += [p for entry in listed for p in entry.get("problems", ())]
    except (OSError, ReplicatorError) as exc:
        warnings.append(f"Hydra's outputs could not be recorded: {exc}")
    for message in warnings:
        warn(message, RuntimeWarning)
    return ImportSummary(
        cwd=cwd,
        tensorboard=tensorboard,
        hydra=hydra,
        config=config,
        config_hash=config_hash,
        multirun=tuple(listed),
        tools=tuple(tools),
        warnings=tuple(warnings),
    )


def _written(job: HydraJob) -> float:
    try:
        return (job.dir / ".hydra" / "config.yaml").stat().st_mtime
    except OSError:
        return 0.0


def _mirrored_paths(run_dir: Path) -> set[Path]:
    """The local folders and files the run's mirrors wrote into (mirrors.json's ``where``: a
    directory, or an MLflow ``sqlite:///`` or ``file:`` store), resolved."""
    paths: set[Path] = set()
    for entry in read_mirrors(run_dir).values():
        where = str(entry.get("where") or "").split(" run ")[0]
        for prefix in ("sqlite:///", "file://", "file:"):
            if where.startswith(prefix):
                where = where[len(prefix) :]
                break
        if where and os.path.isabs(where) and os.path.exists(where):
            paths.add(Path(where).resolve())
    return paths
