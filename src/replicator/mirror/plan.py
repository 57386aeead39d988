"""Which sinks a run mirrors to, with which options; checked before the run starts.

The sinks come from ``replicator run --mirror a,b`` or ``start(mirror=...)``, else from the
``mirror:`` key of ``replicator.yaml`` (every sink named there is mirrored on every run). Options
of a sink are those of ``replicator.yaml`` under its name, updated by those given to ``start``.
An option named like a credential (``api_key``, ``token``, ``password``) is refused: credentials
come from the tools' own places, so that they never reach a run's files.

A script that joins a ``replicator run`` does not mirror itself: it leaves its request in
``config/mirror.json`` and the recorder, which feeds the sinks, adds them (a run is mirrored
once, by the process that owns its record).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._util.io import atomic_write_json, read_json
from ..errors import UsageError
from ..redact import is_secret_name, redact_text
from .base import SINKS, Sink, make_sink, sink_names

__all__ = [
    "MirrorRequest",
    "parse_mirror",
    "prepare_sinks",
    "read_request",
    "write_request",
]

MirrorRequest = dict[str, dict[str, Any]]
"""Sink name -> its options."""

REQUEST_FILE = "config/mirror.json"
"""The mirror request of a script that joined a ``replicator run`` (read by the recorder)."""


def parse_mirror(value: Any, *, where: str) -> MirrorRequest | None:
    """``"a,b"``, ``["a", "b"]`` or ``{"a": {options}}`` as a request; None when not given.

    ``"none"`` (or an empty list) asks for no sink at all.
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        request: MirrorRequest = {}
        for name, options in value.items():
            if options is not None and not isinstance(options, Mapping):
                raise UsageError(
                    f"{where}: the options of mirror '{name}' must be a mapping (key: value), "
                    f"got {options!r}."
                )
            request[str(name).strip().lower()] = dict(options or {})
        return request
    if isinstance(value, str) or (
        isinstance(value, Sequence) and all(isinstance(v, str) for v in value)
    ):
        names = [n for n in sink_names(value) if n != "none"]
        return {name: {} for name in names}
    raise UsageError(
        f"{where}: mirror must be sink names ('tensorboard,mlflow'), a list of them, or a "
        f"mapping of name -> options; got {value!r}. Known: {', '.join(SINKS)}."
    )


def prepare_sinks(
    requested: MirrorRequest | None,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    where: str = "mirror",
) -> list[Sink]:
    """The sinks to feed, their packages imported and options checked.

    Raises UsageError (unknown sink, a credential among the options) or MissingDependencyError
    (naming the extra), so that the run does not start.
    """
    configured = {str(k): dict(v or {}) for k, v in (settings or {}).items()}
    chosen = requested if requested is not None else {name: {} for name in configured}
    sinks = []
    for name, given in chosen.items():
        if name not in SINKS:
            raise UsageError(
                f"{where}: unknown mirror '{name}'. Known mirrors: {', '.join(SINKS)}."
            )
        options = {**configured.get(name, {}), **given}
        for key in options:
            if is_secret_name(str(key)):
                raise UsageError(
                    f"{where}: option '{key}' of mirror '{name}' looks like a credential. "
                    f"replicator never records credentials: give it where {name} reads it "
                    "(its environment variable or config file)."
                )
            if isinstance(options[key], str) and redact_text(options[key]) != options[key]:
                raise UsageError(
                    f"{where}: option '{key}' of mirror '{name}' holds a credential (a password "
                    "in a URL, a token). replicator never records credentials: give it where "
                    f"{name} reads it (its environment variable or config file)."
                )
        sink = make_sink(name, options)
        sink.check()
        sinks.append(sink)
    return sinks


def write_request(run_dir: str | os.PathLike[str], request: MirrorRequest) -> None:
    """Leave a joined script's mirror request for the recorder."""
    path = Path(run_dir) / REQUEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, request, fsync=False)


def read_request(run_dir: str | os.PathLike[str]) -> MirrorRequest:
    """A joined script's mirror request (empty when there is none)."""
    try:
        data = read_json(Path(run_dir) / REQUEST_FILE)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}
