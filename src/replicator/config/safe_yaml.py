"""Safe YAML for configs: one SafeLoader subclass that checks the parsed structure (size,
nesting, aliases, duplicate keys, huge numbers, control characters) before building any value,
and refuses what would hang or explode with a ConfigError naming file and line."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    pass


# ---------------------------------------------------------------------------------- safe YAML
# Bounds on what a config may hold. Real configs are far below them. Each is checked on the
# composed node graph before any value is built, so a hostile file (an alias "billion laughs",
# brackets nested 5,000 deep, a recursive alias) is refused in milliseconds instead of filling
# memory and the run directory. 32 levels also keep OmegaConf, which recurses about ten frames
# per level, well inside Python's recursion limit.
MAX_CONFIG_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 32
MAX_VALUES = 100_000
MAX_ALIAS_VALUES = 10_000
MAX_NUMBER_CHARS = 1_000


class _Refused(Exception):
    """The bounded loader refused a document: ``problem`` at 1-based ``line`` (or None)."""

    def __init__(self, problem: str, line: int | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


def clip(text: str, limit: int = 80) -> str:
    """``text`` short enough for a one-line message."""
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.cache
def _loader_class() -> type:
    """PyYAML's SafeLoader with a bounded nesting depth and bounded numbers (built on first use:
    yaml is imported lazily)."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            # the composer recurses once per level: stop before Python's recursion limit does
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise _Refused(
                        f"values are nested more than {MAX_DEPTH} levels deep; flatten the config",
                        mark.line + 1,
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_yaml_int(self, node: Any) -> Any:
            # int() of a long digit string is slow or refused by Python itself (4,300 digits)
            if len(node.value) > MAX_NUMBER_CHARS:
                raise _Refused(
                    f"the number '{clip(node.value, 20)}' has {len(node.value):,} digits, more "
                    f"than the {MAX_NUMBER_CHARS:,} a config value may have; quote it to keep it "
                    "as a string",
                    node.start_mark.line + 1,
                )
            return super().construct_yaml_int(node)

    BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)
    return BoundedLoader


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_duplicates(loader: Any, node: Any) -> None:
    """Refuse a mapping that defines a key twice (YAML keeps the last one, silently)."""
    import yaml

    seen: dict[tuple[type, Any], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        ident = (type(key), key)
        try:
            first = seen.get(ident)
        except TypeError:  # an unhashable key: the constructor says so later
            continue
        if first is not None:
            raise _Refused(
                f"key '{clip(str(key), 40)}' is defined twice, on lines {first} and {line}; "
                "keep one (YAML would silently keep the last)",
                line,
            )
        seen[ident] = line


def _check_graph(loader: Any, root: Any) -> None:
    """Walk the composed node graph once (aliases are shared nodes, so this is linear in the
    text) and refuse cycles, deep or large expansions and duplicate keys, before construction."""
    import yaml

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    reused_line: int | None = None
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        ident = id(node)
        line = node.start_mark.line + 1
        if finished:
            kids = _children(node)
            size[ident] = 1 + sum(size[id(k)] for k in kids)
            depth[ident] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_nodes.discard(ident)
            if depth[ident] > MAX_DEPTH:
                raise _Refused(
                    f"aliases nest values more than {MAX_DEPTH} levels deep; flatten the config",
                    line,
                )
            if size[ident] > MAX_VALUES:
                raise _Refused(
                    f"the config holds more than {MAX_VALUES:,} values once its aliases are "
                    "expanded"
                    + (" (the value anchored here is the first one reused)" if reused_line else "")
                    + "; split it or use fewer nested aliases",
                    reused_line or line,
                )
            continue
        if ident in size:
            continue
        if ident in open_nodes:
            raise _Refused(
                "a recursive alias: a value contains an alias to its own anchor",
                line,
            )
        open_nodes.add(ident)
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(loader, node)
        for kid in reversed(_children(node)):
            if id(kid) in open_nodes:
                raise _Refused(
                    "a recursive alias: a value contains an alias to its own anchor",
                    kid.start_mark.line + 1,
                )
            if id(kid) in size and reused_line is None and _children(kid):
                reused_line = kid.start_mark.line + 1
            stack.append((kid, False))
    extra = size[id(root)] - len(size)
    if extra > MAX_ALIAS_VALUES:
        raise _Refused(
            f"its aliases expand to {extra:,} more values than are written (at most "
            f"{MAX_ALIAS_VALUES:,}; the value anchored here is the first one reused); write "
            "the values out or use fewer nested aliases",
            reused_line,
        )


def _parse_yaml(text: str) -> tuple[Any, Any]:
    """``(value, root node)`` of one YAML document through the bounded safe loader."""
    loader = _loader_class()(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_graph(loader, root)
        return loader.construct_document(root), root
    finally:
        loader.dispose()


def load_yaml(text: str, label: str, *, in_file: bool) -> tuple[Any, Any]:
    """Parse ``text``; every failure is a one-line ConfigError that starts with ``label`` (a
    file's display name, with line and column when ``in_file``, or an override)."""
    import yaml

    def at(line: int | None, column: int | None = None) -> str:
        if not in_file or line is None:
            return label
        return f"{label}:{line}" + (f":{column}" if column is not None else "")

    try:
        return _parse_yaml(text)
    except _Refused as exc:
        raise ConfigError(f"{at(exc.line)}: {exc.problem}.") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").replace("\n", " ")
        if mark is None:
            raise ConfigError(f"{label}: {problem}. Fix the YAML syntax there.") from None
        if not in_file:
            raise ConfigError(
                f"{label}: the value is not valid YAML ({problem}, column {mark.column + 1})."
            ) from None
        raise ConfigError(
            f"{at(mark.line + 1, mark.column + 1)}: {problem}. Fix the YAML syntax there."
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"{at(line)}: character {_char(exc.character)} is not allowed in YAML; remove it."
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML ({clip(str(exc), 200)}).") from None
    except RecursionError:
        raise ConfigError(f"{label}: values are nested too deeply; flatten the config.") from None


def _char(character: Any) -> str:
    code = character if isinstance(character, int) else ord(str(character)[:1] or "\0")
    return f"#x{code:04x}"


def first_nonfinite(value: Any, prefix: str) -> tuple[str, float] | None:
    """The dotted key and value of the first NaN or infinity in ``value``."""
    if isinstance(value, float) and not math.isfinite(value):
        return prefix, value
    if isinstance(value, Mapping):
        items: Iterable[tuple[str, Any]] = (
            (f"{prefix}.{k}" if prefix else str(k), v) for k, v in value.items()
        )
    elif isinstance(value, (list, tuple)):
        items = ((f"{prefix}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = first_nonfinite(item, key)
        if found is not None:
            return found
    return None


def nonfinite_message(shown: str) -> str:
    # run.json and the other records are strict JSON, which has no NaN or infinity; a value
    # recorded as a string would not be the float the script used.
    return (
        f"must be a finite number, got {clip(shown, 40)}. Configs are recorded as "
        "JSON, which has no NaN or infinity: use null, a large number such as 1e9, or a string "
        "such as 'inf' that the script converts."
    )
