"""The stages of ``replicator reproduce``, in the order they run (see :mod:`.core`).

A :class:`~replicator.errors.ReproduceError` names the stage it stopped at, one of these.
"""

from __future__ import annotations

__all__ = ["STAGES"]

STAGES = ("host", "checkout", "environment", "data", "run", "compare")
"""The stages of a reproduction, in order; a :class:`~replicator.errors.ReproduceError` names one."""
