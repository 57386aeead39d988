"""Old import path of the RNG-state functions, kept so that scripts written for replicator 0.1
(``from replicator.rng import register_rng``) keep working. New code imports them from
:mod:`replicator` or :mod:`replicator.checkpoints`."""

from __future__ import annotations

from .checkpoints.rng import (
    register_rng,
    registered_rngs,
    restore_rng_state,
    rng_state,
    unregister_rng,
)

__all__ = ["register_rng", "registered_rngs", "restore_rng_state", "rng_state", "unregister_rng"]
