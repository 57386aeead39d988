"""Reading a sink's options (from ``replicator.yaml`` or ``start(mirror={...})``) with clear errors.

Options are written to disk with the run's settings, so they never hold credentials: a key that
looks like one (``api_key``, ``token``, ``password``...) is refused with the tool's own place for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = [
    "TAG_KEYS",
    "check_keys",
    "float_option",
    "int_option",
    "path_option",
    "str_option",
    "tag_labels",
]

_SECRET_WORDS = ("key", "token", "password", "secret", "credential")

TAG_KEYS = ("commit", "snapshot_ref", "config_hash", "seed")
"""The run's tags every sink labels the tool's run with (``commit:abc123``...)."""


def check_keys(
    sink: str, options: Mapping[str, Any], known: tuple[str, ...], *, credentials: str
) -> None:
    """UsageError for a credential-like or unknown key; ``credentials`` says where the tool's
    own credentials live."""
    for key in options:
        if not isinstance(key, str):
            raise UsageError(f"Mirror '{sink}': option names must be strings, got {key!r}.")
        if key not in known and any(word in key.lower() for word in _SECRET_WORDS):
            raise UsageError(
                f"Mirror '{sink}': option '{key}' looks like a credential; replicator never "
                f"records credentials. {credentials}"
            )
        if key not in known:
            raise UsageError(
                f"Mirror '{sink}' has no option '{key}'. Known options: {', '.join(known)}."
            )


def str_option(sink: str, options: Mapping[str, Any], key: str, default: str | None) -> str | None:
    """The non-empty string at ``key``, or ``default`` when absent."""
    value = options.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise UsageError(
            f"Mirror '{sink}': option '{key}' must be a non-empty string, got {value!r}."
        )
    return value.strip()


def path_option(sink: str, options: Mapping[str, Any], key: str) -> Path | None:
    """The directory at ``key`` (``~`` expanded, relative to the working directory), or None."""
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str | Path) or not str(value).strip():
        raise UsageError(
            f"Mirror '{sink}': option '{key}' must be a directory path, got {value!r}."
        )
    path = Path(value).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"Mirror '{sink}': option '{key}' is {path}, which is a file; give a directory."
        )
    return path


def int_option(
    sink: str, options: Mapping[str, Any], key: str, default: int, *, low: int, high: int
) -> int:
    """The integer at ``key`` within [low, high], or ``default`` when absent."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(
            f"Mirror '{sink}': option '{key}' must be an integer from {low} to {high}, "
            f"got {value!r}."
        )
    return value


def float_option(
    sink: str, options: Mapping[str, Any], key: str, default: float, *, low: float, high: float
) -> float:
    """The number at ``key`` within [low, high], or ``default`` when absent."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise UsageError(
            f"Mirror '{sink}': option '{key}' must be a number from {low:g} to {high:g}, "
            f"got {value!r}."
        )
    return float(value)


def tag_labels(tags: Mapping[str, str]) -> list[str]:
    """``["commit:abc123", "seed:0", ...]`` for the run's identifying tags that are known."""
    return [f"{key}:{tags[key]}" for key in TAG_KEYS if tags.get(key) not in (None, "")]
