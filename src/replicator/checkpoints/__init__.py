"""Checkpoints: the manager behind ``run.checkpoint()`` and ``replicator checkpoint``, the
safetensors-based file format, and the RNG state saved with every checkpoint."""

from __future__ import annotations

from ..errors import CheckpointHashError
from .describe import describe_checkpoints, read_checkpoint
from .file import Snapshot
from .info import Checkpoint, CheckpointFallbackWarning, CheckpointInfo, VerifyReport
from .manager import CheckpointManager
from .read import read_checkpoint_file
from .rng import register_rng, restore_rng_state, rng_state, unregister_rng

__all__ = [
    "Checkpoint",
    "CheckpointFallbackWarning",
    "CheckpointHashError",
    "CheckpointInfo",
    "CheckpointManager",
    "Snapshot",
    "VerifyReport",
    "describe_checkpoints",
    "read_checkpoint",
    "read_checkpoint_file",
    "register_rng",
    "restore_rng_state",
    "rng_state",
    "unregister_rng",
]
