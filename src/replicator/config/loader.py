"""Loading configs: override parsing, ``extends:`` composition, type checks, interpolation limits,
schemas; :func:`compose_config` / :func:`compose_args` for ``replicator.load_config`` and
``replicator.capture_args``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .safe_yaml import MAX_CONFIG_BYTES, clip, first_nonfinite, load_yaml, nonfinite_message
from .values import flatten, to_container

if TYPE_CHECKING:
    from omegaconf import DictConfig


@dataclass(frozen=True)
class Override:
    """One parsed override: ``op`` is 'set', 'add', 'force' or 'delete'."""

    op: str
    key: str
    value: Any
    text: str


def parse_override(text: str) -> Override:
    """Parse ``a.b=1``, ``+a.b=1``, ``++a.b=1`` or ``~a.b`` (values are YAML)."""
    raw = text.strip()
    if raw.startswith("~"):
        key = raw[1:].split("=", 1)[0].strip()
        op = "delete"
        value: Any = None
    else:
        if "=" not in raw:
            raise ConfigError(
                f"Override '{clip(text)}' has no '='. Write KEY=VALUE (e.g. optim.lr=0.01), "
                "+KEY=VALUE to add a key, or ~KEY to delete one."
            )
        key, _, value_text = raw.partition("=")
        key = key.strip()
        if key.startswith("++"):
            op, key = "force", key[2:]
        elif key.startswith("+"):
            op, key = "add", key[1:]
        else:
            op = "set"
        value = _parse_value(value_text, text) if value_text.strip() else ""
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"Override '{clip(text)}': '{clip(key)}' is not a dotted key such as optim.lr."
        )
    return Override(op=op, key=key, value=value, text=text)


def _parse_value(value_text: str, text: str) -> Any:
    """An override's value, through the same bounded loader as files, and finite."""
    label = f"Override '{clip(text)}'"
    value, _ = load_yaml(value_text, label, in_file=False)
    bad = first_nonfinite(value, "")
    if bad is not None:
        raise ConfigError(f"{label}: the value {nonfinite_message(value_text.strip())}")
    return value


# ---------------------------------------------------------------------------------- loading
def _key_lines(root: Any) -> dict[str, int]:
    """Map dotted keys to the 1-based line where each is defined in the composed document."""
    import yaml

    lines: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = f"{prefix}{key_node.value}"
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key + ".")

    walk(root, "")
    return lines


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    shown = _display(path)
    text = _read_text(path, shown)
    data, root = load_yaml(text, shown, in_file=True)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{shown}:1: a config must be a mapping of keys to values, got {type(data).__name__}."
        )
    lines = _key_lines(root) if root is not None else {}
    bad = first_nonfinite(data, "")
    if bad is not None:
        key, value = bad
        probe, line = key.partition("[")[0], None
        while probe and line is None:
            line = lines.get(probe)
            probe = probe.rpartition(".")[0]
        where = f"{shown}:{line}" if line else shown
        raise ConfigError(f"Config key '{key}' in {where} {nonfinite_message(str(value))}")
    return data, lines


def _read_text(path: Path, shown: str) -> str:
    """The config file's text: at most MAX_CONFIG_BYTES, UTF-8."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"Config file {shown} does not exist. Check the path given with -c."
        ) from exc
    except OSError as exc:
        raise ConfigError(f"Config file {shown} cannot be read: {exc}.") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"Config file {shown} is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB, too "
            "large for a config; keep data in data files and point to them from the config."
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"Config file {shown}:{line} is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save "
            "it as UTF-8."
        ) from None


class _Sources:
    """Where each key was defined (file and line), for error messages."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.lines: dict[str, tuple[Path, int]] = {}

    def where(self, key: str) -> str:
        probe = key
        while probe:
            if probe in self.lines:
                path, line = self.lines[probe]
                return f"{_display(path)}:{line}"
            probe = probe.rpartition(".")[0]
        return _display(self.files[-1]) if self.files else "the overrides"


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _load_tree(path: Path, sources: _Sources, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(_display(p) for p in (*chain, path))
        raise ConfigError(f"Config files extend each other in a cycle: {cycle}.")
    data, lines = _read_yaml(path)
    bases = data.pop("extends", None)
    merged: dict[str, Any] = {}
    if bases is not None:
        if isinstance(bases, str):
            bases = [bases]
        if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
            line = lines.get("extends", 1)
            raise ConfigError(
                f"{_display(path)}:{line}: 'extends' must be a file name or a list of file names."
            )
        for base in bases:
            base_path = (path.parent / base) if not os.path.isabs(base) else Path(base)
            if not base_path.exists() and base_path.suffix == "":
                base_path = base_path.with_suffix(".yaml")
            if not base_path.exists():
                line = lines.get("extends", 1)
                raise ConfigError(
                    f"{_display(path)}:{line}: extends '{base}', but {_display(base_path)} "
                    "does not exist."
                )
            merged = _deep_merge(merged, _load_tree(base_path, sources, (*chain, path)))
    sources.files.append(path)
    for key, line in lines.items():
        if key != "extends" and not key.startswith("extends."):
            sources.lines[key] = (path, line)
    return _deep_merge(merged, data)


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_type(key: str, old: Any, new: Any, sources: _Sources, text: str) -> None:
    where = sources.where(key)
    if isinstance(old, Mapping) and not isinstance(new, Mapping):
        raise ConfigError(
            f"Config key '{key}' in {where} is a section; override '{text}' would replace it "
            f"with {new!r}. Set one of its keys instead (e.g. {key}.<name>=...)."
        )
    if _is_number(old) and not _is_number(new):
        raise ConfigError(
            f"Config key '{key}' in {where} must be a number, got {new!r} ('{text}')."
        )
    if isinstance(old, bool) and not isinstance(new, bool):
        raise ConfigError(
            f"Config key '{key}' in {where} must be true or false, got {new!r} ('{text}')."
        )


def apply_overrides(
    data: dict[str, Any], overrides: Iterable[str | Override], sources: _Sources | None = None
) -> dict[str, Any]:
    """Apply overrides to a plain nested dict (a copy is returned)."""
    import copy
    import difflib

    sources = sources or _Sources()
    out = copy.deepcopy(data)
    for item in overrides:
        ov = item if isinstance(item, Override) else parse_override(item)
        parts = ov.key.split(".")
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                if ov.op in ("add", "force") and isinstance(node, dict):
                    node[part] = {}
                else:
                    prefix = ".".join(parts[: i + 1])
                    raise ConfigError(_unknown_key_message(prefix, ov, out, difflib))
            node = node[part]
            if not isinstance(node, dict):
                prefix = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"Override '{ov.text}': '{prefix}' in {sources.where(prefix)} is a value, "
                    "not a section."
                )
        leaf = parts[-1]
        exists = leaf in node
        if ov.op == "delete":
            if not exists:
                raise ConfigError(_unknown_key_message(ov.key, ov, out, difflib))
            del node[leaf]
        elif ov.op == "add":
            if exists:
                raise ConfigError(
                    f"Override '{ov.text}': key '{ov.key}' already exists in "
                    f"{sources.where(ov.key)}. Drop the '+' to change it, or use ++ to force."
                )
            node[leaf] = ov.value
        elif ov.op == "force":
            node[leaf] = ov.value
        else:
            if not exists:
                raise ConfigError(_unknown_key_message(ov.key, ov, out, difflib))
            _check_type(ov.key, node[leaf], ov.value, sources, ov.text)
            node[leaf] = ov.value
    return out


def _unknown_key_message(key: str, ov: Override, data: dict[str, Any], difflib: Any) -> str:
    known = list(flatten(data).keys())
    sections = {k.rsplit(".", 1)[0] for k in known if "." in k}
    close = difflib.get_close_matches(key, [*known, *sections], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return (
        f"Override '{ov.text}': config has no key '{key}'.{hint} "
        f"To add a new key, write +{ov.key}={ov.text.partition('=')[2] or 'VALUE'}."
    )


@dataclass(frozen=True)
class ComposedConfig:
    """A loaded config with its sources: the files read and every override applied, in order."""

    config: DictConfig
    files: tuple[Path, ...]
    overrides: tuple[str, ...]


def compose_config(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Sequence[str] = (),
    schema: type | None = None,
    run_overrides: Sequence[str] = (),
    seed: int | None = None,
) -> ComposedConfig:
    """Load a YAML config (with ``extends:``), apply overrides, resolve and validate it.

    ``run_overrides`` (the ``--set`` of ``replicator run``) apply after ``overrides``, and
    ``seed``, when given, is set last as the ``seed`` key. ``schema`` (a dataclass) validates
    types with OmegaConf's structured configs.
    """
    sources = _Sources()
    data: dict[str, Any] = {}
    if path is not None:
        data = _load_tree(Path(path), sources)
    data = apply_overrides(data, overrides, sources)
    data = _apply_run(data, run_overrides, seed, sources)
    _check_interpolations(data, sources)
    cfg = _to_omegaconf(data, sources)
    if schema is not None:
        cfg = _validate_schema(cfg, schema, sources)
    _resolve_check(cfg, sources)
    return ComposedConfig(cfg, tuple(sources.files), (*overrides, *run_overrides))


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Sequence[str] = (),
    schema: type | None = None,
) -> DictConfig:
    """The config of :func:`compose_config`, without its sources; nothing is recorded."""
    return compose_config(path, overrides=overrides, schema=schema).config


def _apply_run(
    data: dict[str, Any], run_overrides: Sequence[str], seed: int | None, sources: _Sources
) -> dict[str, Any]:
    """What `replicator run` adds: its --set overrides, then its seed."""
    data = apply_overrides(data, run_overrides, sources)
    if seed is not None:
        data["seed"] = seed
    return data


# ``${a.b}``: a plain reference to another key (resolvers and relative keys count as one value)
_REFERENCE = re.compile(r"\$\{\s*([^${}:\s]+)\s*\}")
MAX_INTERPOLATIONS = 10_000


def _check_interpolations(data: dict[str, Any], sources: _Sources) -> None:
    """Refuse references that expand exponentially (``b: ${a}${a}``, ``c: ${b}${b}``, ...):
    OmegaConf resolves every reference anew, so 20 such lines of 17 bytes take minutes."""
    flat = flatten(data)
    refs = {
        key: _REFERENCE.findall(value)
        for key, value in flat.items()
        if isinstance(value, str) and "${" in value
    }
    if not refs:
        return
    targets: dict[str, list[str]] = {}

    def keys_of(ref: str) -> list[str]:
        if ref not in targets:
            inside = ref + "."
            targets[ref] = [ref] if ref in flat else [k for k in flat if k.startswith(inside)]
        return targets[ref]

    cost: dict[str, int] = {}
    for start in refs:
        stack, active = [(start, False)], set()
        while stack:
            key, finished = stack.pop()
            if key in cost:
                continue
            deps = [t for ref in refs.get(key, ()) for t in keys_of(ref)]
            if finished:
                active.discard(key)
                cost[key] = 1 + sum(cost.get(d, 1) for d in deps)  # a cycle: OmegaConf says so
                if cost[key] > MAX_INTERPOLATIONS:
                    raise ConfigError(
                        f"Config key '{key}' in {sources.where(key)}: its interpolations expand "
                        f"to more than {MAX_INTERPOLATIONS:,} values (each ${{...}} is resolved "
                        "anew); refer to each value fewer times."
                    )
            elif key not in active:
                active.add(key)
                stack.append((key, True))
                stack.extend((d, False) for d in deps if d not in cost and d not in active)


def _to_omegaconf(data: dict[str, Any], sources: _Sources) -> DictConfig:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.create(data)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        raise ConfigError(f"Config key '{key}' in {sources.where(key)}: {exc.msg}") from exc


def _validate_schema(cfg: DictConfig, schema: type, sources: _Sources) -> DictConfig:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        base = OmegaConf.structured(schema)
        merged = OmegaConf.merge(base, cfg)
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "")
        msg = str(getattr(exc, "msg", exc)).splitlines()[0]
        raise ConfigError(
            f"Config key '{key}' in {sources.where(key)} does not fit {schema.__name__}: {msg}"
        ) from exc
    return merged  # type: ignore[return-value]


def _resolve_check(cfg: DictConfig, sources: _Sources) -> None:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "")
        msg = str(getattr(exc, "msg", exc)).splitlines()[0]
        raise ConfigError(f"Config key '{key}' in {sources.where(key)}: {msg}") from exc


def compose_args(
    namespace: Any,
    *,
    config: Any = None,
    run_overrides: Sequence[str] = (),
    seed: int | None = None,
) -> ComposedConfig:
    """An argparse ``Namespace`` (or any mapping) as a config, over ``config`` when given.

    ``run_overrides`` and ``seed`` apply as in :func:`compose_config`. A namespace is updated
    with the resulting values: the script goes on using it, so it must hold what is recorded.
    """
    from omegaconf import OmegaConf

    data = to_container(namespace)
    if config is not None:
        data = _deep_merge(to_container(config), data)
    data = _apply_run(data, run_overrides, seed, _Sources())
    if hasattr(namespace, "__dict__") and not isinstance(namespace, Mapping):
        for key, value in data.items():
            setattr(namespace, key, value)
    return ComposedConfig(OmegaConf.create(data), (), tuple(run_overrides))
