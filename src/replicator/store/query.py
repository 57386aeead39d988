"""``--where`` expressions over runs: ``config.optim.lr < 0.1 and summary.test_acc >= 0.9``.

A small, safe subset of Python expressions, parsed with :mod:`ast` and never ``eval``'d: names
and dotted paths (``config.a.b``, ``summary.acc``, ``status``, ``seed``, ``experiment``,
``name``), numbers, strings, True/False/None, lists, comparisons (``== != < <= > >= in not in``),
``and``/``or``/``not`` and parentheses.

A path missing from a run makes what uses it unknown, as NULL does in SQL: a run matches only
when the expression is true, so a run without ``summary.acc`` matches neither
``summary.acc > 0.9`` nor ``not summary.acc > 0.9``, and a typo (``summary.tets_acc``) matches no
run at all (``replicator ls`` then warns that no run has that path). ``or`` with a true side is
still true. Expressions nested more than :data:`MAX_DEPTH` levels are refused.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import QueryError

__all__ = ["compile_where", "missing_paths"]

_MISSING = object()  # a path the run does not have: "unknown"
MAX_DEPTH = 100  # levels of the parsed expression; _compile recurses once per level
SECTIONS = frozenset({"config", "summary"})
# the top-level fields of RunRecord.as_dict(); dotted paths must start with one of them
FIELDS = SECTIONS | {
    "id",
    "dir",
    "experiment",
    "name",
    "status",
    "seed",
    "started",
    "ended",
    "duration",
    "exit_code",
    "command",
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


# the same as _COMPARE, as C functions where there is one (faster per run)
_FAST: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def _path(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def _lookup(record: Mapping[str, Any], parts: list[str] | tuple[str, ...]) -> Any:
    value: Any = record
    for part in parts:
        if (type(value) is dict or isinstance(value, Mapping)) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def _clip(text: str, limit: int = 80) -> str:
    """``text`` short enough for a one-line message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _depth(node: ast.AST) -> int:
    """How many levels ``node`` nests (iteratively: the tree may be deeper than the stack)."""
    deepest = 0
    stack = [(node, 1)]
    while stack and deepest <= MAX_DEPTH:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(current))
    return deepest


def _parse(expression: str) -> ast.Expression:
    """The checked syntax tree of a ``--where`` expression."""
    text = expression.strip()
    shown = _clip(expression)
    too_deep = QueryError(
        f"--where '{shown}': nested more than {MAX_DEPTH} levels deep; write a simpler expression."
    )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        if "too many nested" in str(exc.msg):
            raise too_deep from None
        hint = " Compare with '==', not '='." if re.search(r"(?<![=!<>])=(?!=)", text) else ""
        raise QueryError(
            f"--where '{shown}': not a valid expression ({_clip(str(exc.msg))}).{hint} "
            "Example: --where 'config.optim.lr < 0.1 and summary.acc > 0.9'"
        ) from None
    except ValueError as exc:  # a NUL byte (Python 3.11)
        raise QueryError(
            f"--where '{shown}': not a valid expression ({_clip(str(exc))})."
        ) from None
    except (RecursionError, MemoryError):
        raise too_deep from None
    if _depth(tree.body) > MAX_DEPTH:
        raise too_deep
    return tree


def compile_where(expression: str) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a ``--where`` expression into a predicate over ``RunRecord.as_dict()``."""
    tree = _parse(expression)
    _validate(tree.body, expression)
    for node in ast.walk(tree.body):
        parts = _path(node) if isinstance(node, ast.Attribute) else None
        if parts and parts[0] not in FIELDS:
            raise QueryError(
                f"--where '{_clip(expression)}': unknown field '{_clip(parts[0], 40)}' in "
                f"'{_clip('.'.join(parts), 60)}'. Use config.KEY, summary.KEY or one of: "
                f"{', '.join(sorted(FIELDS - SECTIONS))}."
            )

    evaluate = _compile(tree.body)

    def predicate(record: Mapping[str, Any]) -> bool:
        try:
            result = evaluate(record)
        except TypeError:
            return False
        # unknown (a path the run lacks) is not a match, whatever `not` was applied to it
        return result is not _MISSING and bool(result)

    return predicate


def _validate(node: ast.AST, expression: str) -> None:
    allowed = (
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.Compare,
        ast.Name,
        ast.Attribute,
        ast.Constant,
        ast.List,
        ast.Tuple,
        ast.Load,
        *_COMPARE,
    )
    shown = _clip(expression)
    for child in ast.walk(node):
        if not isinstance(child, allowed):
            part = ast.unparse(child) if isinstance(child, ast.expr) else type(child).__name__
            raise QueryError(
                f"--where '{shown}': '{_clip(part, 40)}' is not allowed; use paths, constants, "
                "comparisons, and/or/not."
            )
        if (
            isinstance(child, ast.UnaryOp)
            and isinstance(child.op, ast.USub)
            and not isinstance(child.operand, ast.Constant)
        ):
            raise QueryError(f"--where '{shown}': '-' only applies to numbers.")


def _compile(node: ast.expr) -> Callable[[Mapping[str, Any]], Any]:
    """``node`` as a function of a record giving its value (_MISSING, unknown, where a path is
    missing), built once per expression: the syntax tree is not walked again for each run."""
    if isinstance(node, ast.BoolOp):
        # three-valued: `and` is false if any side is false, `or` true if any side is true,
        # and otherwise an unknown side makes the whole unknown
        sides = [_compile(value_node) for value_node in node.values]
        decisive = not isinstance(node.op, ast.And)

        def bool_op(record: Mapping[str, Any]) -> Any:
            unknown = False
            for side in sides:
                value = side(record)
                if value is _MISSING:
                    unknown = True
                elif bool(value) is decisive:
                    return decisive
            return _MISSING if unknown else not decisive

        return bool_op
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand)
        negate = isinstance(node.op, ast.Not)

        def unary(record: Mapping[str, Any]) -> Any:
            value = operand(record)
            if value is _MISSING:
                return _MISSING
            return (not value) if negate else -value

        return unary
    if isinstance(node, ast.Compare):
        return _compile_compare(node)
    if isinstance(node, ast.Constant):
        constant = node.value
        return lambda record: constant
    if isinstance(node, (ast.List, ast.Tuple)):
        elements = [_compile(e) for e in node.elts]

        def sequence(record: Mapping[str, Any]) -> Any:
            items = [element(record) for element in elements]
            return _MISSING if any(item is _MISSING for item in items) else items

        return sequence
    parts = _path(node)
    if parts is not None:
        if parts in (["true"], ["True"]):
            return lambda record: True
        if parts in (["false"], ["False"]):
            return lambda record: False
        return _compile_path(tuple(parts))
    raise QueryError(f"Unsupported expression: {ast.dump(node)}")  # pragma: no cover


def _compile_compare(node: ast.Compare) -> Callable[[Mapping[str, Any]], Any]:
    left_fn = _compile(node.left)
    links = [
        (_FAST.get(type(op), _COMPARE[type(op)]), _compile(right))
        for op, right in zip(node.ops, node.comparators)
    ]
    if len(links) == 1 and isinstance(node.comparators[0], ast.Constant):
        # the usual case, `config.lr < 0.1`: one comparison with a constant
        compare, constant = links[0][0], node.comparators[0].value

        def with_constant(record: Mapping[str, Any]) -> Any:
            left = left_fn(record)
            if left is _MISSING:
                return _MISSING
            return bool(compare(left, constant))

        return with_constant
    if len(links) == 1:
        ((compare, right_fn),) = links

        def single(record: Mapping[str, Any]) -> Any:
            left = left_fn(record)
            right = right_fn(record)
            if left is _MISSING or right is _MISSING:
                return _MISSING
            return bool(compare(left, right))

        return single

    def chain(record: Mapping[str, Any]) -> Any:
        left = left_fn(record)
        for compare, right_fn in links:
            right = right_fn(record)
            if left is _MISSING or right is _MISSING:
                return _MISSING
            if not compare(left, right):
                return False
            left = right
        return True

    return chain


def _compile_path(parts: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    """The value at a dotted path; a bare name is a summary metric first, then a config key
    (``ls --where 'acc > 0.9'``), unless the record has a field of that name."""
    if len(parts) > 1:

        def dotted(record: Mapping[str, Any]) -> Any:
            value: Any = record
            for part in parts:
                if type(value) is dict:  # JSON objects: one look-up, no isinstance
                    value = value.get(part, _MISSING)
                    if value is _MISSING:
                        return _MISSING
                elif isinstance(value, Mapping) and part in value:
                    value = value[part]
                else:
                    return _MISSING
            return value

        return dotted
    (name,) = parts

    def bare(record: Mapping[str, Any]) -> Any:
        if name in record:
            return record[name]
        for section in ("summary", "config"):
            value = _lookup(record, (section, name))
            if value is not _MISSING:
                return value
        return _MISSING

    return bare


def missing_paths(expression: str, records: list[Mapping[str, Any]]) -> list[str]:
    """Dotted paths of ``expression`` that no record has: likely typos (``summary.tst_acc``)."""
    try:
        tree = _parse(expression)
    except QueryError:
        return []
    paths = {
        tuple(p)
        for node in ast.walk(tree.body)
        if isinstance(node, ast.Attribute) and (p := _path(node)) is not None
    }
    # only the outermost attribute chains
    paths = {p for p in paths if not any(len(q) > len(p) and q[: len(p)] == p for q in paths)}
    return sorted(
        ".".join(p) for p in paths if all(_lookup(r, list(p)) is _MISSING for r in records)
    )
