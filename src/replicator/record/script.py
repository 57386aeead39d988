"""The script's side of ``replicator run``: joining the launcher and recording the config it uses.

``replicator.load_config`` and ``replicator.capture_args`` are defined here. They call the pure
loader (:func:`replicator.config.compose_config`, :func:`~replicator.config.compose_args`) with
what the launcher passed to the script (:class:`~replicator._protocol.ChildContext`: its ``-c``
file, its ``--set`` overrides, its seed), remember which files and overrides made the config so
that ``start(cfg)`` can record them, and, inside ``replicator run``, record the config the script
actually uses in ``config/script.json`` for the launcher.

Inside ``replicator run`` a :class:`~replicator.errors.ReplicatorError` that escapes the script
reads like a CLI error (``Error: ...``) instead of a traceback: the launcher's child
is a process replicator started for the user, so its top-level error output is ours to shape.
The hook is installed by the first call that joins the launcher (``load_config``,
``capture_args``, ``start``), never by ``import replicator`` (importing a library must not change
how a program reports its errors), and it hands every other exception to the hook that was in
place before. It stays installed after the run finishes: the error it formats is usually the one
that just ended the run's ``with`` block, and so reaches the top of the script after the run has
finished.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._protocol import (
    REPLICATOR_RUN_DIR,
    ChildContext,
    ScriptConfig,
    write_script_config,
)
from .._util.io import read_json
from ..config import ComposedConfig, compose_args, compose_config, to_container
from ..errors import ReplicatorError
from .recorder import fingerprint_config_data, record_config, recordable_config

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = [
    "capture_args",
    "install_excepthook",
    "joined_context",
    "load_config",
    "record_script_config",
    "remember_sources",
    "sources_of",
]

# id(config) -> (a weak reference to it, its files, its overrides). The weak reference keeps
# nothing alive, removes the entry when the config dies, and tells an id() reused by another
# object from the config the entry was made for.
_sources: dict[int, tuple[weakref.ref[Any], tuple[str, ...], tuple[str, ...]]] = {}


class _ErrorHook:
    """``sys.excepthook`` inside ``replicator run``: replicator errors read like CLI errors."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, ReplicatorError):
            print(f"Error: {exc}", file=sys.stderr)
            return
        self.previous(exc_type, exc, tb)


def install_excepthook() -> None:
    """Install the error hook (once per process), chaining to the current ``sys.excepthook``."""
    if not isinstance(sys.excepthook, _ErrorHook):
        sys.excepthook = _ErrorHook(sys.excepthook)


def joined_context() -> ChildContext | None:
    """The launcher's context when ``replicator run`` started this process (else None).

    Joining installs the error hook first, so that a bad variable already reads like a CLI error.
    """
    if not REPLICATOR_RUN_DIR.is_set():
        return None
    install_excepthook()
    return ChildContext.from_environ()


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Sequence[str] = (),
    schema: type | None = None,
    apply_run_overrides: bool = True,
) -> DictConfig:
    """Load a YAML config (with ``extends:``), apply overrides, resolve and validate it.

    Inside a run started by ``replicator run``, the CLI's ``-c FILE`` replaces ``path`` (the
    script's path is its default: the config named on the command line is the one used and
    recorded), the CLI's ``--set`` overrides and seed are applied after ``overrides``, and the
    resulting config is recorded in the run. ``schema`` (a dataclass) validates types with
    OmegaConf's structured configs. ``apply_run_overrides=False`` leaves out what the CLI adds.
    """
    context = joined_context()
    applied = context if apply_run_overrides else None
    if applied is not None and applied.config_path is not None:
        path = applied.config_path
    composed = compose_config(
        path,
        overrides=overrides,
        schema=schema,
        run_overrides=applied.overrides if applied else (),
        seed=applied.seed if applied else None,
    )
    return _adopt(composed, context)


def capture_args(namespace: Any, *, config: Any = None) -> DictConfig:
    """Record an argparse ``Namespace`` (or any mapping) as the run's config.

    For existing argparse scripts: ``cfg = replicator.capture_args(parser.parse_args())``. Inside
    a ``replicator run``, the CLI's ``--set`` overrides and seed apply to the arguments too (and
    are written back into the namespace).
    """
    context = joined_context()
    composed = compose_args(
        namespace,
        config=config,
        run_overrides=context.overrides if context else (),
        seed=context.seed if context else None,
    )
    return _adopt(composed, context)


def _adopt(composed: ComposedConfig, context: ChildContext | None) -> DictConfig:
    """Remember where ``composed`` came from and, inside a run, record it in the run."""
    remember_sources(composed.config, composed.files, composed.overrides)
    if context is not None:
        record_script_config(composed.config, context)
    return composed.config


def remember_sources(cfg: Any, files: Sequence[str | Path], overrides: Sequence[str]) -> None:
    """Remember which files and overrides made ``cfg``, so that ``start(cfg)`` records them."""
    key = id(cfg)

    def forget(ref: weakref.ref[Any]) -> None:
        if _sources.get(key, (None,))[0] is ref:
            del _sources[key]

    try:
        ref = weakref.ref(cfg, forget)
    except TypeError:  # a plain dict cannot be referenced weakly; only our loaders call this
        return
    _sources[key] = (ref, tuple(str(f) for f in files), tuple(overrides))


def sources_of(cfg: Any) -> tuple[list[str], list[str]]:
    """The files and overrides that made ``cfg`` (empty when it was not loaded here)."""
    entry = _sources.get(id(cfg))
    if entry is None or entry[0]() is not cfg:
        return [], []
    return list(entry[1]), list(entry[2])


def record_script_config(cfg: Any, context: ChildContext) -> None:
    """Record the config a script actually uses in the run that ``replicator run`` opened."""
    run_dir = context.run_dir
    data = to_container(cfg)
    files, overrides = sources_of(cfg)
    digest = record_config(run_dir, data, files=files, overrides=overrides)
    record = ScriptConfig(config=recordable_config(data), config_hash=digest)
    if data.get("data") and data.get("data") != _launcher_config(run_dir).get("data"):
        # The script's own config declares datasets the launcher did not see: fingerprint them
        # now, before training reads them (the launcher files them in run.json at the end).
        from ..store import Store

        try:
            datasets = fingerprint_config_data(
                data, store=Store(run_dir.parent.parent), base_dir=os.getcwd(), where=None
            )
            record = dataclasses.replace(record, data=datasets)
        except Exception as exc:  # recorded; the user's training goes on
            record = dataclasses.replace(record, data_error=str(exc))
    write_script_config(run_dir, record)


def _launcher_config(run_dir: Path) -> dict[str, Any]:
    try:
        config = read_json(run_dir / "run.json").get("config")
    except (OSError, ValueError, AttributeError):
        return {}
    return config if isinstance(config, dict) else {}
