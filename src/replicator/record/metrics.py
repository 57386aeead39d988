"""Metric logging: an append-only ``metrics.jsonl`` fed from an in-memory buffer.

``MetricsWriter.log`` costs about a function call: it appends ``(step, time, dict)`` to a deque.
A background thread turns the buffer into JSON lines and appends them with one ``write`` at
least every second and at close, so a ``kill -9`` loses at most the last second. Nothing written
is ever rewritten: a resumed run appends a ``{"event": "resume", "step": N}`` line, and readers
mark earlier lines with a larger step as superseded.

Line format: ``{"step": 12, "time": 1764167703.51, "key": "loss", "value": 0.25}``. Non-finite
values are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` so that every
line is strict JSON. Lines parsed from a script's output carry ``"source": "output"``.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.io import append_lines
from ..errors import ConfigError

__all__ = ["MetricPattern", "MetricsWriter", "decode_value", "encode_value", "read_metrics"]

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


class MetricsWriter:
    """Buffer metric dicts and append them to ``path`` from a background thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        interval: float = 1.0,
        source: str | None = None,
        on_tick: Callable[[], None] | None = None,
        first_step: int = 0,
    ) -> None:
        self.path = Path(path)
        self.interval = interval
        self.source = source
        self.last: dict[str, Any] = {}
        self.changed = False  # set when a flush wrote lines, so the summary can follow
        self._buffer: deque[tuple[int, float, Mapping[str, Any]]] = deque()
        self._next_step = first_step
        self._on_tick = on_tick
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="replicator-metrics", daemon=True)
        self._thread.start()

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Queue ``metrics`` at ``step`` (default: one past the last step logged)."""
        if step is None:
            step = self._next_step
        self._next_step = step + 1
        self._buffer.append((step, time.time(), metrics))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
            if self._on_tick is not None:
                try:
                    self._on_tick()
                except Exception:  # a heartbeat must never kill logging
                    pass

    def flush(self) -> None:
        """Write everything buffered so far (safe from any thread)."""
        with self._lock:
            lines: list[str] = []
            buffer = self._buffer
            source = self.source
            last = self.last
            while True:
                try:
                    step, stamp, metrics = buffer.popleft()
                except IndexError:
                    break
                for key, value in list(metrics.items()):
                    encoded = encode_value(value)
                    last[str(key)] = encoded
                    entry: dict[str, Any] = {
                        "step": step,
                        "time": round(stamp, 6),
                        "key": str(key),
                        "value": encoded,
                    }
                    if source:
                        entry["source"] = source
                    lines.append(json.dumps(entry))
            if lines:
                append_lines(self.path, lines)
                self.changed = True

    def write_event(self, event: Mapping[str, Any]) -> None:
        """Append a control line (e.g. a resume marker) after flushing pending metrics."""
        self.flush()
        append_lines(self.path, [json.dumps(dict(event))], fsync=True)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        self.flush()


def read_metrics(
    path: str | os.PathLike[str], *, include_superseded: bool = False
) -> list[dict[str, Any]]:
    """Read a metrics.jsonl; damaged lines (a torn last line after a kill) are skipped.

    Lines logged before a resume marker with a step after the resume point are superseded;
    they are dropped unless ``include_superseded`` (then they carry ``"superseded": True``).
    """
    entries: list[dict[str, Any]] = []
    resume_points: list[tuple[int, int]] = []  # (index in entries, step resumed from)
    for obj in iter_jsonl(path):
        if obj.get("event") == "resume":
            resume_points.append((len(entries), int(obj.get("step", -1))))
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
    """Yield the JSON objects of a JSON-lines file, skipping damaged lines."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    yield obj
    except FileNotFoundError:
        return


@dataclass(frozen=True)
class MetricPattern:
    """A regex that turns output lines into metrics: a ``step`` group and one group per metric.

    ``step (?P<step>\\d+) \\| loss (?P<loss>[-\\d.e+]+)`` turns ``step 100 | loss 2.41`` into
    ``{"loss": 2.41}`` at step 100. Without a ``step`` group, matches are numbered 0, 1, 2...
    """

    regex: re.Pattern[str]

    @classmethod
    def compile(cls, pattern: str, *, where: str = "--metric-pattern") -> MetricPattern:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"{where}: '{pattern}' is not a valid regular expression ({exc})."
            ) from exc
        names = [n for n in regex.groupindex if n != "step"]
        if not names:
            raise ConfigError(
                f"{where}: '{pattern}' has no named group for a metric. Name one group per "
                r"metric, e.g. 'step (?P<step>\d+) \| loss (?P<loss>[-0-9.e+]+)'."
            )
        return cls(regex)

    def parse(self, line: str) -> tuple[int | None, dict[str, float]] | None:
        """The step (or None) and the metric values found in one line, or None."""
        m = self.regex.search(line)
        if not m:
            return None
        values: dict[str, float] = {}
        for name, text in m.groupdict().items():
            if name == "step" or text is None:
                continue
            try:
                values[name] = float(text)
            except ValueError:
                continue
        if not values:
            return None
        step_text = m.groupdict().get("step")
        step = None
        if step_text is not None:
            try:
                step = int(float(step_text))
            except ValueError:
                step = None
        return step, values
