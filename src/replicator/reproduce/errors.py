"""The error a reproduction raises: it names the stage that failed and the cause."""

from __future__ import annotations

from ..errors import ReplicatorError

__all__ = ["STAGES", "ReproduceError"]

STAGES = ("host", "checkout", "environment", "data", "run", "compare")


class ReproduceError(ReplicatorError):
    """A reproduction stopped at ``stage`` (checkout, environment, data, run...) because of ``cause``."""

    def __init__(self, stage: str, cause: str, *, hint: str = "") -> None:
        message = f"reproduce failed at stage '{stage}': {cause}"
        if hint:
            message = message.rstrip(". ") + f". {hint}"
        super().__init__(message)
        self.stage = stage
        self.cause = cause
