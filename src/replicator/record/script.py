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
    read_script_config,
    write_script_config,
)
from .._util.io import read_json
from .._util.warnings import warn
from ..config import (
    ComposedConfig,
    apply_overrides,
    compose_args,
    compose_config,
    config_hash,
    flatten,
    to_container,
)
from ..errors import ConfigError, ReplicatorError, UsageError
from ..redact import REDACTED, redact_argv
from .recorder import fingerprint_config_data, record_config, recordable_config

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = [
    "capture_args",
    "check_run_overrides",
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
    recorded = _recorded_before_resume(context) if applied is not None else None
    composed = compose_config(
        path,
        overrides=overrides,
        schema=schema,
        run_overrides=applied.overrides if applied else (),
        seed=applied.seed if applied else None,
    )
    if recorded is not None and context is not None:
        composed = _as_recorded(composed, recorded, context, schema)
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


def check_run_overrides(cfg: Any, context: ChildContext) -> None:
    """Refuse a config given to ``start()`` that the launcher's ``--set`` overrides never reached.

    ``load_config`` and ``capture_args`` apply them; a dict (or dataclass, or DictConfig) the
    script built itself has them only if the script put them there. Changing that object here
    would not change what the script already read from it, and recording a changed copy would
    record a config the script never used: so the run stops and says which were not applied.
    """
    if not context.overrides or cfg is None or _composed(cfg):
        return
    data = to_container(cfg)
    missing = []
    for override in context.overrides:
        try:
            applied = apply_overrides(data, [override]) == data
        except ConfigError:
            applied = False
        if not applied:
            missing.append(override)
    if missing:
        given = " ".join(f"--set {redact_argv([o])[0]}" for o in missing)
        raise UsageError(
            f"{given} not applied: the script passed its own {type(cfg).__name__} to "
            "replicator.start(), and replicator does not change a config the script already "
            "uses. Load it with replicator.load_config(...) or replicator.capture_args(...), "
            "which apply --set, or run without these --set options."
        )


def _composed(cfg: Any) -> bool:
    """Whether ``cfg`` came from load_config/capture_args (which applied the run's overrides)."""
    entry = _sources.get(id(cfg))
    return entry is not None and entry[0]() is cfg


def record_script_config(cfg: Any, context: ChildContext) -> None:
    """Record the config a script actually uses in the run that ``replicator run`` opened."""
    run_dir = context.run_dir
    data = to_container(cfg)
    recorded = _recorded_before_resume(context)
    if recorded is not None and config_hash(recordable_config(data)) == recorded.config.config_hash:
        return  # a resumed run with the config it was recorded with: the record stays as it is
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


# ------------------------------------------------------------------ a resumed run's config


@dataclasses.dataclass(frozen=True)
class _Recorded:
    """The config a run was recorded with, read before this (resumed) session rewrites it."""

    config: ScriptConfig
    files: frozenset[str]


# run directory -> what was recorded before this process joined it (None: nothing usable)
_recorded: dict[Path, _Recorded | None] = {}
_warned: set[tuple[Path, tuple[str, ...]]] = set()


def _recorded_before_resume(context: ChildContext | None) -> _Recorded | None:
    """In a resumed run, the config its earlier sessions recorded (read once per process)."""
    if context is None or not context.resume:
        return None
    run_dir = context.run_dir
    if run_dir not in _recorded:
        _recorded[run_dir] = _read_recorded(run_dir)
    return _recorded[run_dir]


def _read_recorded(run_dir: Path) -> _Recorded | None:
    script = read_script_config(run_dir)
    if script is None:
        return None
    try:
        sources = read_json(run_dir / "config" / "sources.json")
        files = frozenset(str(f["source"]) for f in sources.get("files") or ())
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return _Recorded(script, files)


def _as_recorded(
    composed: ComposedConfig, recorded: _Recorded, context: ChildContext, schema: type | None
) -> ComposedConfig:
    """A resumed run goes on with the config it was recorded with, even if its files changed.

    Applies when the config comes from the same files as the recorded one; a value the record
    holds redacted (a secret) is taken from the files as they are now. Warns once per run and
    files when the files no longer give the recorded config.
    """
    files = tuple(str(Path(f)) for f in composed.files)
    if not files or frozenset(files) != recorded.files:
        return composed
    fresh = to_container(composed.config)
    if config_hash(recordable_config(fresh)) == recorded.config.config_hash:
        return composed
    from omegaconf import OmegaConf

    data = _fill_redacted(recorded.config.config, fresh)
    cfg = OmegaConf.create(data)
    if schema is not None:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), cfg)
    key = (context.run_dir, files)
    if key not in _warned:
        _warned.add(key)
        names = ", ".join(files)
        warn(
            f"Resuming run {context.run_id or context.run_dir.name}: {names} changed since the "
            f"run was recorded ({_changes(recorded.config.config, recordable_config(fresh))}); "
            "the resumed run uses the recorded config. Start a new run to use the file as it "
            "is now.",
            RuntimeWarning,
        )
    return dataclasses.replace(composed, config=cfg)


def _fill_redacted(recorded: Any, fresh: Any) -> Any:
    if isinstance(recorded, dict):
        fields = fresh if isinstance(fresh, dict) else {}
        return {k: _fill_redacted(v, fields.get(k)) for k, v in recorded.items()}
    if isinstance(recorded, list):
        items = fresh if isinstance(fresh, list) and len(fresh) == len(recorded) else None
        return [_fill_redacted(v, items[i] if items else None) for i, v in enumerate(recorded)]
    if isinstance(recorded, str) and REDACTED in recorded and fresh is not None:
        return fresh
    return recorded


def _changes(recorded: dict[str, Any], now: dict[str, Any]) -> str:
    old, new = flatten(recorded), flatten(now)
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k, "-") != new.get(k, "-"))
    shown = [f"{k}: {old.get(k, '(none)')!r} -> {new.get(k, '(none)')!r}" for k in keys[:5]]
    return ", ".join(shown) + (f", and {len(keys) - 5} more" if len(keys) > 5 else "")
