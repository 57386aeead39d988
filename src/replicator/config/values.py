"""Configs as plain values: the JSON-ready container a run records, flattening, the config hash,
``hparams.csv`` and the YAML dump."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .safe_yaml import first_nonfinite, nonfinite_message

if TYPE_CHECKING:
    pass


# ---------------------------------------------------------------------------------- recording
def to_container(cfg: Any) -> dict[str, Any]:
    """A plain, resolved, JSON-ready dict from a DictConfig, a dataclass, a Namespace or a dict."""
    import dataclasses

    if cfg is None:
        return {}
    mod = type(cfg).__module__
    if mod.startswith("omegaconf"):
        from omegaconf import OmegaConf

        out = _jsonable(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    elif dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        out = _jsonable(dataclasses.asdict(cfg))
    elif hasattr(cfg, "__dict__") and type(cfg).__name__ == "Namespace":
        out = _jsonable(vars(cfg))
    elif isinstance(cfg, Mapping):
        out = _jsonable(dict(cfg))
    else:
        raise ConfigError(
            f"A config must be a mapping, a DictConfig, a dataclass or an argparse Namespace; "
            f"got {type(cfg).__name__}."
        )
    bad = first_nonfinite(out, "")
    if bad is not None:
        raise ConfigError(f"Config key '{bad[0]}' {nonfinite_message(str(bad[1]))}")
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    return str(value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out


def config_hash(data: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved config (key order does not matter)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def hparams_csv(data: Mapping[str, Any]) -> str:
    """The flat ``key,value`` CSV of a config (lists and None as JSON)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["key", "value"])
    for key, value in flatten(data).items():
        shown = (
            value
            if isinstance(value, (str, int, float)) and not isinstance(value, bool)
            else json.dumps(value)
        )
        writer.writerow([key, shown])
    return buf.getvalue()


def dump_yaml(data: Mapping[str, Any]) -> str:
    """``data`` as block-style YAML in its own key order (how ``config.yaml`` is written)."""
    import yaml

    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False, allow_unicode=True)
