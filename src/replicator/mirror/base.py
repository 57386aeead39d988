"""What a sink is: the interface each outside logger implements, and the registry of them.

A *sink* (a *mirror*) forwards one run to a logger users already run (TensorBoard, MLflow, W&B,
Comet, Neptune, Visdom). The local record stays the source of truth: the worker
(:mod:`replicator.mirror.worker`) reads the run's ``metrics.jsonl`` and hands each sink batches of
:class:`Point`; a sink only translates them into its tool's calls. A sink may raise from any
method: the worker reports the failure once, retries with backoff and records the gap.

Sinks never record credentials: API keys come from the tool's own places (environment variables,
``~/.netrc``, the tool's config files), never from the options written to disk.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .._util.deps import OPTIONAL
from ..errors import MissingDependencyError, UsageError

__all__ = ["SINKS", "Point", "RunInfo", "Sink", "make_sink", "sink_names"]


@dataclass(frozen=True)
class Point:
    """One logged scalar: ``key`` at ``step`` (None when logged without one), ``time`` in epoch
    seconds, from process ``rank``."""

    key: str
    value: float
    step: int | None
    time: float
    rank: int = 0


@dataclass(frozen=True)
class RunInfo:
    """What a sink knows about the run it mirrors.

    ``tags`` holds ``commit``, ``snapshot_ref``, ``config_hash``, ``seed``,
    ``replicator_version`` and ``status`` where known (strings; absent keys are unknown).
    """

    run_id: str
    experiment: str
    name: str | None
    run_dir: Path
    config: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    started: float = 0.0


class Sink(abc.ABC):
    """One outside logger. Subclasses set ``name`` and ``module`` and implement open,
    send_metrics and close; the rest have working defaults."""

    name: ClassVar[str]
    """The sink's name on the command line: ``tensorboard``, ``mlflow``, ``wandb``..."""
    module: ClassVar[str]
    """The package it needs, for :func:`replicator._util.deps.require`: ``mlflow``, ``comet_ml``..."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})
        self.previous: dict[str, Any] = {}
        """This sink's entry in ``mirrors.json`` from an earlier session (set before ``open``
        when there is one): ``previous.get("ref")`` is the tool's run to continue."""

    def check(self) -> None:
        """Check that the tool is installed and validate the options, before the run starts.

        Raises MissingDependencyError (naming the extra) or UsageError. Subclasses that
        validate options call ``super().check()`` first. The package is found, not imported:
        ``open`` imports it on the worker's thread, off the training loop.
        """
        top = self.module.split(".")[0]
        try:
            found = importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingDependencyError(
                top, OPTIONAL.get(top, top), purpose=f"Mirroring runs to {self.name}"
            )

    @abc.abstractmethod
    def open(self, info: RunInfo) -> None:
        """Create (or attach to) the tool's run; send the config and tags."""

    @abc.abstractmethod
    def send_metrics(self, points: Sequence[Point]) -> None:
        """Send one batch of points, in logged order. May raise: the worker retries the batch."""

    def send_resume(self, step: int) -> None:  # noqa: B027 - optional hook
        """The run was resumed from ``step``: values sent for later steps are superseded (a
        tool that can drop them does; the new values follow). Default: nothing."""

    def send_summary(self, summary: Mapping[str, float]) -> None:  # noqa: B027 - optional hook
        """Send the run's end-of-run summary (final values). Default: nothing."""

    def send_artifact(self, path: Path, name: str) -> None:  # noqa: B027 - optional hook
        """Attach a file of the run (``run.json``...) where the tool has artifacts. Default: nothing."""

    @abc.abstractmethod
    def close(self, status: str) -> None:
        """Finish the tool's run with ``status`` (``completed``, ``failed``...) and flush."""

    def where(self) -> str:
        """Where the data went (a URL or a directory), shown by ``replicator show``."""
        return ""

    def ref(self) -> str | None:
        """The tool's own id of the run after ``open`` (kept in ``mirrors.json`` so that a
        later session or ``replicator mirror`` continues the same run). Default: None."""
        return None


SINKS: dict[str, str] = {
    "tensorboard": "replicator.mirror.tensorboard:TensorBoardSink",
    "mlflow": "replicator.mirror.mlflow:MlflowSink",
    "wandb": "replicator.mirror.wandb:WandbSink",
    "comet": "replicator.mirror.comet:CometSink",
    "neptune": "replicator.mirror.neptune:NeptuneSink",
    "visdom": "replicator.mirror.visdom:VisdomSink",
}
"""Sink name -> ``module:Class``; the module is imported only when the sink is used."""


def sink_names(value: str | Sequence[str] | None) -> list[str]:
    """Sink names from ``"tensorboard,mlflow"`` or a list, stripped, without duplicates."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"A mirror name must be a string, got {item!r}. Known: {_known()}.")
        name = item.strip().lower()
        if name and name not in names:
            names.append(name)
    return names


def make_sink(name: str, options: Mapping[str, Any] | None = None) -> Sink:
    """The sink called ``name`` with its options; UsageError naming the known sinks otherwise."""
    target = SINKS.get(name)
    if target is None:
        raise UsageError(f"Unknown mirror '{name}'. Known mirrors: {_known()}.")
    if options is not None and not isinstance(options, Mapping):
        raise UsageError(
            f"Options of mirror '{name}' must be a mapping (key: value), got {options!r}."
        )
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    sink: Sink = cls(options or {})
    return sink


def _known() -> str:
    return ", ".join(SINKS)
