"""Reading ``metrics.jsonl``, the one metrics-file format, and its value encoding.

One JSON object per line: ``{"step": 12, "time": 1764167703.51, "key": "loss", "value": 0.25}``,
with ``"source": "output"`` on lines parsed from a script's output. Non-finite values are
written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (:func:`encode_value`) so
that every line is strict JSON; :func:`decode_value` turns them back into floats.

The file is append-only. A resumed run appends a control line ``{"event": "resume", "step": N}``
and logs again from step N: lines written before that marker with a step after N are
*superseded*. Nothing in the file says so; :func:`read_metrics` works it out when reading. A line
torn by a kill is skipped: silently when it is the unfinished last line, with a warning when
later appends (which always start on a new line) follow it.

The writer, :class:`replicator.record.metrics.MetricsWriter`, lives with run recording;
checkpoint manifests use the same value encoding for their monitored metrics.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from typing import Any

from .._util.warnings import warn

__all__ = ["decode_value", "encode_value", "iter_jsonl", "read_metrics"]

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_value(value: Any) -> Any:
    """A JSON-safe metric value: numbers as float/int, tensors and numpy scalars unwrapped."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if not isinstance(value, float):
        item = getattr(value, "item", None)
        if callable(item):
            value = item()
        try:
            value = float(value)
        except (TypeError, ValueError):
            return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value` for the non-finite strings."""
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    return value


def read_metrics(
    path: str | os.PathLike[str], *, include_superseded: bool = False
) -> list[dict[str, Any]]:
    """The metric lines of a metrics.jsonl, values decoded; damaged lines are skipped.

    Lines logged before a resume marker with a step after the resume point are superseded;
    they are dropped unless ``include_superseded`` (then they carry ``"superseded": True``).
    """
    entries: list[dict[str, Any]] = []
    resume_points: list[tuple[int, int]] = []  # (index in entries, step resumed from)
    for obj in iter_jsonl(path):
        if obj.get("event") == "resume":
            step = obj.get("step", -1)
            if isinstance(step, bool) or not isinstance(step, int):
                # a damaged marker: dropping nothing keeps every value that was logged
                warn(
                    f"{path}: skipped a damaged resume marker (step {step!r} is not an "
                    "integer); no metrics are marked superseded by it.",
                    RuntimeWarning,
                )
                continue
            resume_points.append((len(entries), step))
            continue
        if "key" not in obj:
            continue
        obj["value"] = decode_value(obj.get("value"))
        entries.append(obj)
    for index, step in resume_points:
        for entry in entries[:index]:
            if isinstance(entry.get("step"), int) and entry["step"] > step:
                entry["superseded"] = True
    if include_superseded:
        return entries
    return [e for e in entries if not e.get("superseded")]


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSON-lines file, skipping damaged lines; none when absent.

    A damaged line followed by others (a line torn by a kill, then appended to on resume) is
    skipped with one warning per file. An unfinished last line is skipped silently: a live
    writer may be in the middle of it, and a kill losing it is the loss the writer promises.
    """
    warned = False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                try:
                    obj = json.loads(line)
                except ValueError:
                    if not warned and line.endswith("\n") and line.strip():
                        warned = True
                        warn(
                            f"{path}: skipped damaged line {number} (a line torn by a crash in "
                            "the middle of a write); the lines around it are read as usual.",
                            RuntimeWarning,
                        )
                    continue
                if isinstance(obj, dict):
                    yield obj
    except FileNotFoundError:
        return
