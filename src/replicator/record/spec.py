"""What ``replicator run`` is asked to do (:class:`RunSpec`), what one recorded run came to
(:class:`LaunchResult`), and the run a child records into (:class:`Target`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..capture.git import SNAPSHOT_MAX_FILE_SIZE

__all__ = ["LaunchResult", "RunSpec", "Target"]


@dataclass(frozen=True)
class RunSpec:
    """What to run and how to record it; built by the CLI from its options."""

    command: tuple[str, ...]
    config_path: str | None = None
    overrides: tuple[str, ...] = ()
    seed: int | None = None
    seeds: int | None = None
    seed_root: int | None = None
    experiment: str | None = None
    name: str | None = None
    outputs: tuple[str, ...] = ()
    metric_pattern: str | None = None
    deterministic: bool = False
    resume: str | None = None
    resume_completed: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    # where the command runs (default: the current directory); relative paths start there
    cwd: str | None = None
    # extra fields for the new run's run.json (e.g. ``reproduction_of``)
    record: Mapping[str, Any] = field(default_factory=dict)
    # untracked files larger than this (bytes) stay out of the code snapshot; 0: no limit;
    # None: snapshot_max_size in replicator.yaml, else 5 MiB (see snapshot_limit)
    snapshot_max_size: int | None = None
    # TensorBoard scalars are imported only from event files under this folder (default: any
    # written under the working directory during the run)
    tensorboard_dir: str | None = None
    # run ``command`` as given, braces included (a run recorded before placeholders existed)
    literal_command: bool = False
    # the sinks to mirror to (``--mirror``), name -> options; None: ``mirror:`` in
    # replicator.yaml; empty: none (replicator.mirror, docs/mirrors.md)
    mirror: Mapping[str, Mapping[str, Any]] | None = None

    def snapshot_limit(self, setting: int | None = None) -> int | None:
        """The code snapshot's size limit in bytes, None for none: ``snapshot_max_size``, else
        ``setting`` (``snapshot_max_size`` in replicator.yaml), else 5 MiB; 0 is no limit."""
        size = self.snapshot_max_size if self.snapshot_max_size is not None else setting
        return SNAPSHOT_MAX_FILE_SIZE if size is None else size or None


@dataclass(frozen=True)
class LaunchResult:
    """The outcome of one recorded run."""

    run_id: str
    dir: Path
    status: str
    exit_code: int | None
    seed: int
    error: str | None = None
    """Why the run failed when the command's exit code does not say (e.g. a full disk)."""


@dataclass(frozen=True)
class Target:
    """The run a child records into (a new one, or a resumed one captured in ``capture_dir``)."""

    run_id: str
    run_dir: Path
    meta: dict[str, Any]
    seed: int
    cwd: str
    capture_dir: Path
    resumed: bool
    # a resumed run's summary.json as the earlier sessions left it (see _write_summary)
    summary_before: Mapping[str, Any] = field(default_factory=dict)
    # the config its command's {config.*} placeholders read (a resume: the recorded one)
    config: Mapping[str, Any] | None = None
