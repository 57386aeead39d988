"""Mirrors: forward a run's config, metrics and summary to the loggers users already run.

A *sink* (:class:`Sink`) is one outside logger (TensorBoard, MLflow, W&B, Comet, Neptune,
Visdom), named in :data:`SINKS` and made with :func:`make_sink`. The worker
(``replicator.mirror.worker``) feeds a run's sinks from its ``metrics.jsonl`` on background
threads; :func:`read_mirrors` says what each sink of a run received, and :func:`mirror_recorded`
sends a recorded run (``replicator mirror RUN --to NAME``). See docs/mirrors.md.
"""

from __future__ import annotations

from .base import SINKS, Point, RunInfo, Sink, make_sink
from .session import mirror_recorded
from .state import describe_mirrors, read_mirrors

__all__ = [
    "SINKS",
    "Point",
    "RunInfo",
    "Sink",
    "describe_mirrors",
    "make_sink",
    "mirror_recorded",
    "read_mirrors",
]
