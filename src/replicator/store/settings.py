"""The project's settings in ``replicator.yaml``, each checked with the file, line and key named.

``replicator.yaml`` sits in the project root (see :func:`~replicator.store.find_project_root`)::

    store: /shared/replicator          # where runs go (REPLICATOR_STORE wins)
    heartbeat_stale_s: 60              # a run on another host counts as crashed after this
    snapshot_max_size: 50MiB           # untracked files larger than this stay out of snapshots

Every key is optional; a key that is not set leaves the default. Where a setting can also be
given otherwise, the order is: the command-line option, then the environment variable, then
``replicator.yaml``, then the default (``docs/settings.md``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["SETTINGS_FILE", "Settings", "parse_size", "read_settings"]

SETTINGS_FILE = "replicator.yaml"
"""The settings file's name in the project root."""

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: str | int) -> int:
    """Bytes from a size such as ``5000``, ``200k``, ``5MiB`` or ``1.5GB`` (binary units).

    Raises ValueError with a one-line message for anything else (a negative number included).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(value), re.IGNORECASE)
    if m is None or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size such as 5MiB, 200k or 1000000.")
    return int(float(m[1]) * _UNITS[m[2].lower()])


@dataclass(frozen=True)
class Settings:
    """What ``replicator.yaml`` sets; None where the file does not set the key."""

    store: Path | None = None
    """The store directory (``store:``), relative paths already made absolute."""
    heartbeat_stale_s: float | None = None
    """``heartbeat_stale_s:``: seconds without a heartbeat after which a run (or a resume lock)
    recorded on another host counts as crashed."""
    snapshot_max_size: int | None = None
    """``snapshot_max_size:`` in bytes; 0 for no limit."""
    sweep_max_jobs: int | None = None
    """``sweep_max_jobs:``: ``replicator sweep`` asks before submitting more jobs than this."""
    remotes: dict[str, dict[str, Any]] | None = None
    """``remotes:``: remote stores by name, each ``{"url": ..., "storage_options": {...}}``
    (``replicator push NAME``); the options go to fsspec and are never recorded or printed."""
    mirror: dict[str, dict[str, Any]] | None = None
    """``mirror:``: the sinks every run mirrors to, each with its options (``mlflow:
    {tracking_uri: ...}``); a list of names for no options (docs/mirrors.md)."""
    path: Path | None = None
    """The file the settings came from (None: there is none)."""


def read_settings(path: str | Path) -> Settings:
    """The settings in ``path``; an empty :class:`Settings` when the file does not exist.

    A file that is not YAML, not a mapping, or holds a value of the wrong kind raises
    :class:`~replicator.errors.ConfigError` naming the file, the line and the key.
    """
    path = Path(path)
    if not path.is_file():
        return Settings()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    import yaml  # only with a settings file: keeps it off every command of projects without one

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: cannot be read as YAML ({exc}).") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings such as 'store: PATH'.")
    lines = _key_lines(text)
    return Settings(
        store=_store(data.get("store"), path, lines),
        heartbeat_stale_s=_seconds(data.get("heartbeat_stale_s"), path, lines),
        snapshot_max_size=_size(data.get("snapshot_max_size"), path, lines),
        remotes=_remotes(data.get("remotes"), path, lines),
        sweep_max_jobs=_count(data.get("sweep_max_jobs"), "sweep_max_jobs", path, lines),
        mirror=_mirror(data.get("mirror"), path, lines),
        path=path,
    )


def _where(key: str, path: Path, lines: dict[str, int]) -> str:
    line = lines.get(key)
    return f"Setting '{key}' in {path}" + (f":{line}" if line else "")


def _store(value: Any, path: Path, lines: dict[str, int]) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(
            f"{_where('store', path, lines)} must be a directory path, got {value!r}."
        )
    root = Path(value).expanduser()
    return root if root.is_absolute() else path.parent / root


def _seconds(value: Any, path: Path, lines: dict[str, int]) -> float | None:
    if value is None:
        return None
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    if not (0 < number < math.inf):
        raise ConfigError(
            f"{_where('heartbeat_stale_s', path, lines)} must be a positive number of seconds, "
            f"got {value!r}. Keep it well above the heartbeat interval (10 s), e.g. 60."
        )
    return float(number)


def _size(value: Any, path: Path, lines: dict[str, int]) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ConfigError(
            f"{_where('snapshot_max_size', path, lines)}: {exc} Use 0 for no limit."
        ) from None


def _count(value: Any, key: str, path: Path, lines: dict[str, int]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        where = _where(key, path, lines)
        raise ConfigError(f"{where} must be a whole number above 0, got {value!r}.")
    return value


def _remotes(value: Any, path: Path, lines: dict[str, int]) -> dict[str, dict[str, Any]] | None:
    """``remotes: {NAME: URL}`` or ``{NAME: {url: URL, storage_options: {...}}}``."""
    if value is None:
        return None
    where = _where("remotes", path, lines)
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must map names to URLs, e.g. 'team: s3://bucket/replicator'.")
    remotes: dict[str, dict[str, Any]] = {}
    for name, entry in value.items():
        entry = {"url": entry} if isinstance(entry, str) else entry
        url = entry.get("url") if isinstance(entry, dict) else None
        options = entry.get("storage_options", {}) if isinstance(entry, dict) else None
        if not isinstance(url, str) or not url or not isinstance(options, dict):
            raise ConfigError(
                f"{where}: remote '{name}' needs 'url: URL' and optionally a mapping "
                "'storage_options:' (fsspec's options, such as endpoint_url or profile)."
            )
        remotes[str(name)] = {"url": url, "storage_options": dict(options)}
    return remotes


def _mirror(value: Any, path: Path, lines: dict[str, int]) -> dict[str, dict[str, Any]] | None:
    """``mirror: [tensorboard, mlflow]`` or ``mirror: {mlflow: {tracking_uri: ...}}``; the
    names and options are checked by replicator.mirror when a run starts."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {v: {} for v in value}
    if isinstance(value, dict) and all(v is None or isinstance(v, dict) for v in value.values()):
        return {str(k): dict(v or {}) for k, v in value.items()}
    raise ConfigError(
        f"{_where('mirror', path, lines)} must list sinks ('mirror: [tensorboard, mlflow]') or "
        "map each to its options ('mirror: {mlflow: {tracking_uri: sqlite:///mlflow.db}}')."
    )


def _key_lines(text: str) -> dict[str, int]:
    """The 1-based line of each top-level key, for the messages."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        str(key.value): key.start_mark.line + 1
        for key, _ in node.value
        if isinstance(key, yaml.ScalarNode)
    }
