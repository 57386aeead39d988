"""Metric logging: an append-only ``metrics.jsonl`` fed from an in-memory buffer.

``MetricsWriter.log`` costs about a function call: it appends ``(step, time, dict)`` to a deque.
A background thread turns the buffer into JSON lines and appends them with one ``write`` at
least every second and at close, so a ``kill -9`` loses at most the last second. Nothing written
is ever rewritten: a resumed run appends a ``{"event": "resume", "step": N}`` line, and readers
treat earlier lines with a larger step as superseded.

The line format, its value encoding and the reader are in :mod:`replicator.store.metrics`.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.io import append_lines
from ..errors import ConfigError
from ..store.metrics import encode_value

__all__ = ["MetricPattern", "MetricsWriter"]


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
