"""Recording a run: :func:`start` (``opening.py``) and :class:`Run` (the Python API, ``run.py``), the script's
side of ``replicator run`` (``script.py``: ``load_config``/``capture_args`` that record what was
loaded, the error hook), the launcher behind ``replicator run`` (``launch.py``, with the child
process in ``child.py``), the recorder that writes a run's files, the metrics writer, output
detection and seeding. The launcher and the script meet in :mod:`replicator._protocol`."""

from __future__ import annotations

from .opening import start
from .run import Run, Summary, active_run

__all__ = ["Run", "Summary", "active_run", "start"]
