"""Hydra apps recorded from what Hydra leaves behind: its ``.hydra/`` folders.

A ``@hydra.main`` app writes, for each job, ``<output dir>/.hydra/`` with ``config.yaml`` (the
composed config), ``overrides.yaml`` (the command line's overrides) and ``hydra.yaml`` (Hydra's
own settings, its mode and the job's number). After a run, :func:`find_hydra_jobs` finds the
folders written since the run started; :func:`record_hydra_job` copies the three files into the
run as ``config/hydra/*.yaml`` and makes the composed config the run's config (``config.yaml``,
the config hash, ``hparams.csv``), secrets redacted as in every config a run records.

A multirun (``-m``) gives one job per parameter combination: :func:`record_multirun` records one
run per job, each with its own overrides, config and TensorBoard scalars, ``"parent"`` naming the
launching run, which lists them in ``hydra_multirun``. The jobs share the launching run's code,
environment and hardware records and take its final status (Hydra's launcher stops at the first
job that fails, and the launching run then fails).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.io import atomic_write, atomic_write_json, read_json
from ..config import dump_yaml
from ..config.safe_yaml import load_yaml
from ..errors import ConfigError
from ..redact import redact_argv, secret_values
from ..store import Store
from ..store.tensorboard import walk_outputs
from .recorder import new_run, record_config, recordable_config, set_status
from .tensorboard import TensorBoardImport, import_event_files

__all__ = [
    "HydraJob",
    "find_hydra_jobs",
    "hydra_job_in",
    "order_jobs",
    "read_hydra_job",
    "record_hydra_job",
    "record_multirun",
]

HYDRA_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml")
# Run records copied from the launching run into each multirun job's run.
_SHARED_RECORDS = ("code.json", "code.patch", "environment.json", "hardware.json")


@dataclass(frozen=True)
class HydraJob:
    """One Hydra job's output folder, read back: its composed config, overrides and settings."""

    dir: Path
    config: dict[str, Any]
    overrides: tuple[str, ...]
    hydra: dict[str, Any]
    multirun: bool
    num: int | None = None
    note: str | None = None
    """Why the config is recorded with its ``${...}`` interpolations unresolved, if it is."""

    def as_dict(self, cwd: Path) -> dict[str, Any]:
        """The job as the launching run lists it (``hydra`` / ``hydra_multirun`` in run.json)."""
        try:
            shown = str(self.dir.relative_to(cwd))
        except ValueError:
            shown = str(self.dir)
        out: dict[str, Any] = {"job": self.num, "overrides": redact_argv(self.overrides)}
        out["dir"] = shown
        if self.note:
            out["note"] = self.note
        return out


def find_hydra_jobs(
    root: str | os.PathLike[str],
    *,
    since: float,
    skip: Iterable[str | os.PathLike[str]] = (),
) -> list[HydraJob]:
    """The Hydra jobs whose ``.hydra/config.yaml`` under ``root`` was written at or after
    ``since``, multirun jobs in their order; unreadable ones are left out."""
    found = (
        hydra_job_in(folder, dirs, since=since) for folder, dirs, _ in walk_outputs(root, skip=skip)
    )
    return order_jobs([job for job in found if job is not None])


def hydra_job_in(folder: str, dirs: Iterable[str], *, since: float) -> HydraJob | None:
    """The Hydra job of ``folder`` (one of :func:`walk_outputs`'s), when its ``.hydra/config.yaml``
    was written at or after ``since`` and can be read."""
    if ".hydra" not in dirs:
        return None
    try:
        fresh = Path(folder, ".hydra", "config.yaml").stat().st_mtime >= since
    except OSError:
        return None
    return read_hydra_job(Path(folder)) if fresh else None


def order_jobs(jobs: Iterable[HydraJob]) -> list[HydraJob]:
    """Jobs by folder, a multirun's in their number's order."""
    return sorted(jobs, key=lambda j: (str(j.dir.parent), j.num or 0, str(j.dir)))


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return load_yaml(text, str(path), in_file=True)[0]
    except ConfigError:
        return None


def read_hydra_job(job_dir: str | os.PathLike[str]) -> HydraJob | None:
    """The Hydra job whose output folder is ``job_dir`` (read from its ``.hydra/``), or None
    when it holds no readable ``.hydra/config.yaml``."""
    job_dir = Path(job_dir)
    folder = job_dir / ".hydra"
    raw = _load(folder / "config.yaml")
    if not isinstance(raw, Mapping):
        return None
    overrides = _load(folder / "overrides.yaml")
    settings = _load(folder / "hydra.yaml")
    hydra = settings.get("hydra") if isinstance(settings, Mapping) else None
    hydra = dict(hydra) if isinstance(hydra, Mapping) else {}
    config, note = _resolved(raw)
    job = hydra.get("job") if isinstance(hydra.get("job"), Mapping) else {}
    mode = str(hydra.get("mode") or "")
    multirun = mode == "MULTIRUN" or (not mode and (job_dir.parent / "multirun.yaml").exists())
    num = job.get("num") if isinstance(job, Mapping) else None
    return HydraJob(
        dir=job_dir,
        config=config,
        overrides=tuple(str(o) for o in overrides) if isinstance(overrides, list) else (),
        hydra=hydra,
        multirun=multirun,
        num=num if isinstance(num, int) and not isinstance(num, bool) else None,
        note=note,
    )


def _resolved(raw: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The config with its interpolations resolved; as saved when they cannot be resolved
    outside the app (``${hydra:...}``, a custom resolver), saying why."""
    from omegaconf import OmegaConf

    from ..config import to_container

    try:
        return to_container(OmegaConf.create(dict(raw))), None
    except Exception as exc:  # OmegaConf's errors have no common base worth naming
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return dict(raw), f"recorded with its interpolations unresolved ({reason})"


def record_hydra_job(run_dir: Path, job: HydraJob, *, as_config: bool = True) -> str | None:
    """Copy the job's ``.hydra`` files into ``config/hydra/`` (redacted) and, with ``as_config``,
    make its composed config the run's config; returns the config hash (None without)."""
    known = secret_values(os.environ, job.overrides)
    folder = run_dir / "config" / "hydra"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(
        folder / "config.yaml", dump_yaml(recordable_config(job.config, secrets=known)), fsync=False
    )
    atomic_write(folder / "overrides.yaml", dump_yaml({"overrides": redact_argv(job.overrides)}))
    atomic_write(
        folder / "hydra.yaml",
        dump_yaml({"hydra": recordable_config(job.hydra, secrets=known)}),
        fsync=False,
    )
    if not as_config:
        return None
    try:
        return record_config(run_dir, job.config, overrides=job.overrides, secrets=known)
    except ConfigError:  # a value JSON cannot hold (NaN): the copies above stay the record
        return None


def record_multirun(
    parent_dir: Path,
    jobs: Sequence[HydraJob],
    *,
    cwd: Path,
    status: str,
    tensorboard: Mapping[Path, Sequence[Path]],
) -> list[dict[str, Any]]:
    """One run per multirun job, linked to the launching run; returns ``hydra_multirun``.

    ``tensorboard`` maps each job's folder to the event files written in it.
    """
    parent = read_json(parent_dir / "run.json")
    store = Store(parent_dir.parent.parent)
    listed: list[dict[str, Any]] = []
    for job in jobs:
        run_id, run_dir, meta = new_run(
            store,
            experiment=str(parent.get("experiment") or "default"),
            name=",".join(redact_argv(job.overrides)) or f"job {job.num}",
            seed=int(parent.get("seed") or 0),
            command=[str(p) for p in parent.get("command") or ()],
            cwd=cwd,
            launcher="hydra-multirun",
            seeding={"source": "the launching run's", "parent": parent.get("id")},
            extra={
                "parent": parent.get("id"),
                "hydra_job": job.as_dict(cwd),
                "overrides": redact_argv(job.overrides),
                "code": parent.get("code"),
            },
        )
        for name in _SHARED_RECORDS:
            if (parent_dir / name).exists():
                shutil.copyfile(parent_dir / name, run_dir / name)
        known = secret_values(os.environ, job.overrides)
        meta["config"] = recordable_config(job.config, secrets=known)
        meta["config_hash"] = record_hydra_job(run_dir, job)
        imported = import_event_files(run_dir, tensorboard.get(job.dir, ()))
        if imported.files:
            meta["imports"] = {"tensorboard": imported.as_dict(job.dir)}
        began, ended = _job_times(job.dir)
        meta["started"] = began
        set_status(run_dir, meta, status)
        # the job lasted from its .hydra/ folder to its last file, not as long as the import
        meta["ended"], meta["duration_s"] = ended, round(ended - began, 3)
        atomic_write_json(run_dir / "run.json", meta)
        listed.append({**job.as_dict(cwd), "run": run_id, **_problems(imported)})
    return listed


def _job_times(job_dir: Path) -> tuple[float, float]:
    """When a job began (its .hydra/config.yaml was written) and its last file was written."""
    began = (job_dir / ".hydra" / "config.yaml").stat().st_mtime
    ended = began
    for folder, _, files in os.walk(job_dir):
        for name in files:
            try:
                ended = max(ended, os.stat(os.path.join(folder, name)).st_mtime)
            except OSError:
                continue
    return began, ended


def _problems(imported: TensorBoardImport) -> dict[str, Any]:
    return {"problems": list(imported.problems)} if imported.problems else {}
