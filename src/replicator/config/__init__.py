"""Configs: YAML files with comments and nesting, ``extends:``, overrides, validation, hashing.

``load_config("configs/mlp.yaml", overrides=["optim.lr=0.01"])`` returns an OmegaConf
``DictConfig``. A file may start from other files with ``extends: base.yaml`` (or a list); the
file's own values win. Overrides use the grammar researchers know from Hydra:

    a.b=1       change an existing key (unknown keys are rejected, with a suggestion)
    +a.new=1    add a key that does not exist yet
    ++a.b=1     set a key whether or not it exists
    ~a.b        delete a key

Values are parsed as YAML (``1`` is an int, ``[1, 2]`` a list, ``null`` None). A value whose type
clashes with the file's (a string for a number, a scalar for a section) is an error that names the
file and line where the key was defined. ``${a.b}`` interpolations are resolved before recording.

This module is a pure loader: it reads files and never writes into a run. ``replicator.load_config``
and ``replicator.capture_args`` (in :mod:`replicator.record.script`) call :func:`compose_config`
and :func:`compose_args` with what ``replicator run`` passed to the script (its ``--set``
overrides and seed) and then record the config the script actually uses in the run.
"""

from __future__ import annotations

from .loader import (
    ComposedConfig,
    Override,
    apply_overrides,
    compose_args,
    compose_config,
    load_config,
    parse_override,
)
from .values import config_hash, dump_yaml, flatten, hparams_csv, to_container

__all__ = [
    "ComposedConfig",
    "Override",
    "apply_overrides",
    "compose_args",
    "compose_config",
    "config_hash",
    "dump_yaml",
    "flatten",
    "hparams_csv",
    "load_config",
    "parse_override",
    "to_container",
]
