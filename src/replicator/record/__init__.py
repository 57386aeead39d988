"""Recording a run: :func:`start` and :class:`Run` (the Python API), the launcher behind
``replicator run``, the recorder that writes a run's files, the metrics writer, output detection
and seeding."""

from __future__ import annotations

from .run import Run, Summary, active_run, start

__all__ = ["Run", "Summary", "active_run", "start"]
