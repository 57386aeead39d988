"""replicator: make machine-learning experiments reproducible, from the first run to the release.

The public API is re-exported here lazily (PEP 562): ``import replicator`` loads nothing heavy,
and each name imports its module on first use.

    cfg = replicator.load_config("configs/mlp.yaml", overrides=["optim.lr=0.01"])
    with replicator.start(cfg, experiment="mlp") as run:
        run.log({"loss": loss}, step=step)
        run.summary["test_acc"] = acc
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = [
    "ConfigError",
    "ReplicatorError",
    "Run",
    "RunRecord",
    "Store",
    "__version__",
    "capture_args",
    "draw_seeds",
    "load_config",
    "seed_everything",
    "seed_worker",
    "start",
]

_EXPORTS: dict[str, str] = {
    "ConfigError": "errors",
    "ReplicatorError": "errors",
    "Run": "run",
    "RunRecord": "store",
    "Store": "store",
    "capture_args": "config",
    "draw_seeds": "seeding",
    "load_config": "config",
    "seed_everything": "seeding",
    "seed_worker": "seeding",
    "start": "run",
}

if TYPE_CHECKING:
    from .config import capture_args, load_config
    from .errors import ConfigError, ReplicatorError
    from .run import Run, start
    from .seeding import draw_seeds, seed_everything, seed_worker
    from .store import RunRecord, Store


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'replicator' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"replicator.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
