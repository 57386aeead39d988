"""Optional dependencies: which extra brings which module, and a clear error when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingDependencyError

__all__ = ["OPTIONAL", "require"]

# top-level module -> the extra of replicator that installs it
OPTIONAL: dict[str, str] = {
    "pandas": "stats",
    "scipy": "stats",
    "matplotlib": "plot",
    "papermill": "notebook",
    "nbformat": "notebook",
    "xxhash": "xxhash",
    "lightning": "lightning",
    "hydra": "hydra",
    "torch": "torch",
    "uv": "repro",
    "tensorboard": "tensorboard",
    "mlflow": "mlflow",
    "wandb": "wandb",
    "comet_ml": "comet",
    "neptune": "neptune",
    "visdom": "visdom",
    "transformers": "transformers",
    "keras": "keras",
    "optuna": "optuna",
    "submitit": "slurm",
    "ray": "ray",
    "fsspec": "remote",
    "s3fs": "s3",
    "starlette": "ui",
    "uvicorn": "ui",
}


def require(module: str, *, purpose: str) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise
        raise MissingDependencyError(top, OPTIONAL.get(top, top), purpose=purpose) from exc
