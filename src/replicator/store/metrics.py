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

A distributed run (``torchrun``, one process per rank) keeps one file per rank, so that two
processes never append to one file: rank 0 writes ``metrics.jsonl``, rank ``r`` writes
``metrics.rank{r}.jsonl`` beside it (:func:`metrics_path`). Readers read rank 0 unless asked for
another rank or for ``rank="all"`` (each line then carries its ``"rank"``).

The writer, :class:`replicator.record.metrics.MetricsWriter`, lives with run recording;
checkpoint manifests use the same value encoding for their monitored metrics.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from .._util.warnings import warn
from ..errors import UsageError

__all__ = [
    "decode_value",
    "encode_value",
    "iter_jsonl",
    "metric_ranks",
    "metrics_path",
    "read_metrics",
]

METRICS_FILE = "metrics.jsonl"
"""Rank 0's metrics file (the only one of a run that is not distributed)."""
_RANK_FILE = re.compile(r"^(?P<stem>.+)\.rank(?P<rank>[1-9][0-9]{0,5})(?P<suffix>\.jsonl)$")

Rank = int | Literal["all"]

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


def metrics_path(run_dir: str | os.PathLike[str], rank: int = 0) -> Path:
    """The metrics file of ``rank`` in a run directory: ``metrics.jsonl`` for rank 0,
    ``metrics.rank{r}.jsonl`` for rank ``r``."""
    return _rank_path(Path(run_dir) / METRICS_FILE, rank)


def _rank_path(path: Path, rank: int) -> Path:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise UsageError(f"{path}: rank must be an integer >= 0 or 'all', got {rank!r}.")
    if rank == 0:
        return path
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def metric_ranks(path: str | os.PathLike[str]) -> list[int]:
    """The ranks that left a metrics file beside ``path`` (rank 0's file), in order.

    Rank 0 is listed when its file exists; a run that is not distributed gives ``[0]`` or ``[]``.
    """
    path = Path(path)
    ranks = [0] if path.exists() else []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return ranks
    for name in names:
        match = _RANK_FILE.match(name)
        if match and f"{match['stem']}{match['suffix']}" == path.name:
            ranks.append(int(match["rank"]))
    return sorted(ranks)


def read_metrics(
    path: str | os.PathLike[str], *, include_superseded: bool = False, rank: Rank = 0
) -> list[dict[str, Any]]:
    """The metric lines of a metrics.jsonl, values decoded; damaged lines are skipped.

    Lines logged before a resume marker with a step after the resume point are superseded;
    they are dropped unless ``include_superseded`` (then they carry ``"superseded": True``).

    ``path`` is rank 0's file. In a distributed run ``rank=r`` reads rank ``r``'s file beside it
    (``metrics.rank{r}.jsonl``; no lines when that rank logged nothing) and ``rank="all"`` reads
    every rank's, rank 0 first, each line with its ``"rank"``.
    """
    if rank == "all":
        merged: list[dict[str, Any]] = []
        for found in metric_ranks(path) or [0]:
            for entry in _read_one(_rank_path(Path(path), found), include_superseded):
                entry["rank"] = found
                merged.append(entry)
        return merged
    return _read_one(_rank_path(Path(path), rank), include_superseded)


def _read_one(path: Path, include_superseded: bool) -> list[dict[str, Any]]:
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
