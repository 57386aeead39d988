"""Placeholders in the command of ``replicator run``: how a script that never imports replicator
receives its seed, run directory or a config value.

``{seed}``, ``{run_dir}``, ``{run_id}`` and ``{config.KEY.PATH}`` are substituted per run before
the child starts (``python train.py --seed {seed} --lr {config.optim.lr}``). Nothing else in the
command is touched: ``python -c "print({1: 2})"`` or ``awk '{print $1}'`` run as written.
``{{seed}}`` passes ``{seed}`` itself. A name that is almost a placeholder (``{sed}``) and a
``{config...}`` key the config lacks are errors, raised before anything starts.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from ..config import flatten
from ..errors import UsageError
from ..redact import REDACTED

__all__ = ["PLACEHOLDERS", "expand_command"]

#: What a command may hold, substituted per run before the child starts.
PLACEHOLDERS = ("{seed}", "{run_dir}", "{run_id}", "{config.KEY.PATH}")
_NAMES = ("seed", "run_dir", "run_id")
_NAME = r"[A-Za-z_][\w]*(?:\.[\w\-]+)*"
# An escaped placeholder ({{seed}}), or a placeholder-shaped field; other braces are left alone.
_FIELD = re.compile(r"\{\{(" + _NAME + r")\}\}|\{(" + _NAME + r")\}")


def _as_argument(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return json.dumps(value)
    return str(value)


def _config_value(name: str, config: Mapping[str, Any], *, recording: bool) -> str:
    value: Any = config
    for key in name.split("."):
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            keys = list(flatten(dict(config)))
            known = ", ".join(keys[:20]) + (", ..." if len(keys) > 20 else "")
            raise UsageError(
                f"Placeholder {{config.{name}}} in the command: the run's config has no key "
                f"'{name}' (its keys: {known or 'none'}). Give it with -c FILE or "
                f"--set {name}=VALUE, or write {{{{config.{name}}}}} to pass the text itself."
            )
    if isinstance(value, str) and REDACTED in value and not recording:
        raise UsageError(
            f"Placeholder {{config.{name}}}: the value was recorded redacted (a secret); give "
            "the command again with the value after '--'."
        )
    return _as_argument(value)


def _is_placeholder(name: str) -> bool:
    return name in _NAMES or name.startswith("config.")


def _near_miss(name: str) -> str | None:
    """The placeholder a field that is not one was probably meant to be (``{sed}``)."""
    if name.lower().startswith("config") or name.lower() in _NAMES:
        return "config.KEY.PATH" if name.lower().startswith("config") else name.lower()
    close = difflib.get_close_matches(name.lower(), _NAMES, n=1, cutoff=0.75)
    return close[0] if close else None


def expand_command(
    command: tuple[str, ...] | list[str],
    values: Mapping[str, str],
    config: Mapping[str, Any],
    *,
    recording: bool = False,
) -> tuple[list[str], set[str]]:
    """``command`` with its placeholders substituted, and the names it used; ``recording``:
    the version for the record, from the redacted config.

    Raises :class:`UsageError` for a ``{config...}`` key the config lacks and for a field that is
    almost a placeholder (``{sed}``), naming it.
    """
    used: set[str] = set()

    def one(match: re.Match[str], part: str) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped is not None:
            return "{" + escaped + "}" if _is_placeholder(escaped) else match.group(0)
        if name in values:
            used.add(name)
            return values[name]
        if name.startswith("config.") and len(name) > 7:
            used.add(name)
            return _config_value(name[7:], config, recording=recording)
        meant = _near_miss(name)
        if meant is None:
            return match.group(0)  # not ours: {x} in a script's own template
        raise UsageError(
            f"Unknown placeholder {{{name}}} in the command argument {part!r} (did you mean "
            f"{{{meant}}}?). The command may hold {', '.join(PLACEHOLDERS)}; write "
            f"{{{{{name}}}}} to pass the text itself."
        )

    expanded = []
    for part in command:

        def substitute(match: re.Match[str], part: str = part) -> str:
            return one(match, part)

        expanded.append(_FIELD.sub(substitute, part))
    return expanded, used
