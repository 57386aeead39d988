"""replicator: make machine-learning experiments reproducible, from the first run to the release.

The public API is re-exported here lazily (PEP 562): ``import replicator`` loads nothing heavy,
and each name imports its module on first use. Importing replicator changes nothing in the
process (no ``sys.excepthook``, no handlers): a script joins ``replicator run`` only when it calls
``load_config``, ``capture_args`` or ``start`` (see :mod:`replicator.record.script`).

    cfg = replicator.load_config("configs/mlp.yaml", overrides=["optim.lr=0.01"])
    with replicator.start(cfg, experiment="mlp") as run:
        run.log({"loss": loss}, step=step)
        run.summary["test_acc"] = acc
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> "module" or "module:attribute" under replicator
_EXPORTS: dict[str, str] = {
    "Checkpoint": "checkpoints",
    "CheckpointError": "errors",
    "CheckpointManager": "checkpoints",
    "ConfigError": "errors",
    "RNGRestoreError": "errors",
    "ReplicatorError": "errors",
    "Run": "record",
    "RunRecord": "store",
    "Store": "store",
    "capture_args": "record.script",
    "check_environment": "environment",
    "check_release": "release",
    "checklist": "cards",
    "datasheet": "cards",
    "draw_seeds": "record.seeding",
    "export_environment": "environment",
    "export_release": "release",
    "fingerprint": "data",
    "load_config": "record.script",
    "load_metrics": "store.frames",
    "load_runs": "store.frames",
    "model_card": "cards",
    "read_checkpoint": "checkpoints",
    "register_rng": "checkpoints",
    "reproduce_run": "reproduce.core:reproduce",
    "run_notebook": "report.notebook",
    "restore_rng_state": "checkpoints",
    "rng_state": "checkpoints",
    "score_readme": "release",
    "seed_everything": "record.seeding",
    "seed_worker": "record.seeding",
    "start": "record",
}

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointManager",
    "ConfigError",
    "RNGRestoreError",
    "ReplicatorError",
    "Run",
    "RunRecord",
    "Store",
    "__version__",
    "capture_args",
    "check_environment",
    "check_release",
    "checklist",
    "datasheet",
    "draw_seeds",
    "export_environment",
    "export_release",
    "fingerprint",
    "load_config",
    "load_metrics",
    "load_runs",
    "model_card",
    "read_checkpoint",
    "register_rng",
    "reproduce_run",
    "restore_rng_state",
    "rng_state",
    "run_notebook",
    "score_readme",
    "seed_everything",
    "seed_worker",
    "start",
]

if TYPE_CHECKING:
    from .cards import checklist, datasheet, model_card
    from .checkpoints.manager import Checkpoint, CheckpointManager, read_checkpoint
    from .checkpoints.rng import register_rng, restore_rng_state, rng_state
    from .data import fingerprint
    from .environment import check_environment, export_environment
    from .errors import CheckpointError, ConfigError, ReplicatorError, RNGRestoreError
    from .record.opening import start
    from .record.run import Run
    from .record.script import capture_args, load_config
    from .record.seeding import draw_seeds, seed_everything, seed_worker
    from .release import check_release, export_release, score_readme
    from .report.notebook import run_notebook
    from .reproduce.core import reproduce as reproduce_run
    from .store import RunRecord, Store
    from .store.frames import load_metrics, load_runs


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'replicator' has no attribute {name!r}")
    import importlib

    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(f"replicator.{module_name}"), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
