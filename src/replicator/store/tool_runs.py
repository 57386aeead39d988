"""A run another tracking tool recorded (MLflow, W&B), as its readers in ``store/`` return it.

:mod:`replicator.store.mlflow_files` and :mod:`replicator.store.wandb_files` read the files those
tools leave on disk into :class:`ToolRun` values; :mod:`replicator.record.tool_imports` appends
their scalars to a run's metrics. A reader never raises on damage inside a file: it returns what
it read before the damage and says where and why in :attr:`ToolRun.problem`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Scalar", "ToolRun"]

Scalar = tuple[int, float, str, float]
"""``(step, wall_time, key, value)``: one logged number, as the TensorBoard reader returns it."""


@dataclass(frozen=True)
class ToolRun:
    """One run of another tool: its scalars in the order they were logged, and what is known
    about it. ``path`` is where it was read (an MLflow run folder, a database, a .wandb file)."""

    tool: str
    path: Path
    run_id: str
    name: str | None = None
    experiment: str | None = None
    scalars: list[Scalar] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    """MLflow's params, W&B's config: the run's settings as the tool recorded them."""
    started: float | None = None
    ended: float | None = None
    status: str | None = None
    """The tool's own status, as a replicator status (completed, failed, interrupted, running)."""
    problem: str | None = None
    """Why reading stopped before the end (None when everything was read)."""
    notes: tuple[str, ...] = ()
    """Things worth saying that did not stop the reading (an unknown file version)."""

    @property
    def keys(self) -> list[str]:
        """The keys of the scalars, in the order they first appear."""
        return list(dict.fromkeys(key for _, _, key, _ in self.scalars))
