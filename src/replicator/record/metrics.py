"""Metric logging: an append-only ``metrics.jsonl`` fed from an in-memory buffer.

``MetricsWriter.log`` turns the values into their lines *at the call* (a logged value is the
value at that moment, even when the caller reuses its dict or updates a tensor in place) and
appends them to a deque. The common call, finite floats and ints under string keys, keeps each
line as a small dict of immutable values (the float *is* the value at the call); the flush
serialises a whole batch with one call of orjson, which writes each float as the shortest text
that reads back as the same float (``repr``'s digits, ten times faster). Any other call is copied
and converted first: numpy scalars, one-element arrays and tensors go through ``.item()``,
``bool`` and other ``int``/``float``/``str`` subclasses to the plain type, anything else through
``float()``. A value that is not one number (an array with many elements, ``None``, an object
whose ``__float__`` raises) is refused at the call with a :class:`~replicator.errors.UsageError`
naming the key, and nothing of that call is recorded. A value that cannot be written (an int too
long to print) costs only that value. Each line's ``time`` is the wall-clock time of its call to
the millisecond (computed once a millisecond, not once a call), as MLflow records it.

A background thread writes the buffer out every :data:`FLUSH_INTERVAL_S` (0.5 s) and at close.
Each flush takes what was buffered when it started (a bounded batch) and appends it with one
``write``; the heartbeat and summary callback run on their own schedule before the flush, so they
never wait on a backlog. When more than :data:`MAX_BACKLOG` values (50,000 lines; some 4 MB of text,
one write) wait to be written, ``log`` blocks
until the thread has taken them: the producer is slowed only past that bound, and
a ``kill -9`` loses at most the last second at any logging rate. A write error (disk full, EIO)
never stops the thread: the batch is dropped, counted and kept in :attr:`MetricsWriter.error`,
which the run records as ``metrics_error`` in run.json when it finishes.

Nothing written is ever rewritten: a resumed run appends a ``{"event": "resume", "step": N}``
line, and readers treat earlier lines with a larger step as superseded. Each append starts on a
new line, so a line torn by a kill stays alone and readers skip it.

The line format, its value encoding and the reader are in :mod:`replicator.store.metrics`.
"""

from __future__ import annotations

import errno
import json
import math
import operator
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.io import append_bytes, append_lines
from ..errors import ConfigError, UsageError
from ..store.metrics import encode_value

__all__ = ["MetricPattern", "MetricsWriter"]


#: Seconds between two writes of the buffer (a kill loses at most about this, plus one batch).
FLUSH_INTERVAL_S = 0.5
#: Seconds between two calls of the writer's ``on_tick`` callback (heartbeat, summary).
TICK_INTERVAL_S = 1.0
#: Buffered lines past which ``log`` waits for the writer thread.
MAX_BACKLOG = 50_000

_KEPT = frozenset((int, float, str))  # immutable: stored as they are, converted when written
_now = time.time


class MetricsWriter:
    """Serialise metric values at the call and append them to ``path`` from a background thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        interval: float = FLUSH_INTERVAL_S,
        source: str | None = None,
        on_tick: Callable[[], None] | None = None,
        first_step: int = 0,
        tick_interval: float = TICK_INTERVAL_S,
        max_backlog: int = MAX_BACKLOG,
    ) -> None:
        self.path = Path(path)
        self.interval = interval
        self.tick_interval = tick_interval
        self.max_backlog = max_backlog
        self.source = source
        self.last: dict[str, Any] = {}  # the newest value of each key (for the summary)
        self.changed = False  # set when a flush wrote lines, so the summary can follow
        self.dropped = 0  # values that could not be written (see ``error``)
        self._first_error: str | None = None
        self._buffer: deque[Any] = deque()  # one entry a line: its text, or what makes it
        self._next_step: Any = first_step
        self._on_tick = on_tick
        self._since = self._until = 0.0  # the millisecond that ``_stamp`` stands for
        self._stamp = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()  # flush now (back-pressure or close)
        self._taken = threading.Event()  # a flush took the buffer
        self._lock = threading.Lock()
        self._failures = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="replicator-metrics", daemon=True)
        self._thread.start()

    @property
    def error(self) -> str | None:
        """Why values were not written (disk full, ...), with how many; None when all were."""
        if self._first_error is None:
            return None
        return f"{self.dropped} metric value(s) not written to {self.path}: {self._first_error}"

    def log(self, metrics: Mapping[Any, Any], step: Any = None) -> None:
        """Queue the lines of ``metrics`` at ``step`` (default: one past the last step logged).

        Raises :class:`~replicator.errors.UsageError` for a value that is not one number (or a
        string) and for a step that is not an integer; nothing of that call is recorded then.
        """
        if step is None:
            step = self._next_step
        elif type(step) is not int:
            step = _as_step(step)
        now = _now()
        if not self._since <= now < self._until:
            self._clock(now)
        stamp = self._stamp
        # The common call, finite floats and ints under string keys: each line is kept as a dict
        # of immutable values and serialised by the flush; any other call (a tensor, a string,
        # NaN, a new key type, not a dict, lines parsed from output) takes the careful path.
        try:
            if self.source is not None:
                raise LookupError("source")
            entries = []
            for key, value in metrics.items():
                kind = type(value)
                if type(key) is str and ((kind is float and value - value == 0.0) or kind is int):
                    entries.append({"step": step, "time": stamp, "key": key, "value": value})
                else:
                    raise LookupError(key)
            self.last.update(metrics)
        except Exception:
            entries = self._lines_carefully(metrics, step, stamp)
        buffer = self._buffer
        buffer.extend(entries)
        self._next_step = step + 1
        if len(buffer) > self.max_backlog:
            self._wait_for_flush()

    def _clock(self, now: float) -> None:
        # The time of the call to the millisecond, computed once a millisecond, not once a call.
        millis = int(now * 1000)
        self._since, self._until = millis / 1000, (millis + 1) / 1000
        self._stamp = millis / 1000

    def _lines_carefully(self, metrics: Any, step: Any, stamp: float) -> list[dict[str, Any]]:
        # Copy and convert (tensors and numpy through .item()), refusing what is not one number.
        try:
            values = dict(metrics)
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"Metrics must be a dict of names to values, e.g. {{'loss': loss}}; got "
                f"{_describe_value(metrics)}."
            ) from exc
        _convert(values, step)
        lines: list[dict[str, Any]] = []
        for key, value in values.items():
            try:
                name = key if type(key) is str else str(key)
                line = {"step": step, "time": stamp, "key": name, "value": encode_value(value)}
            except Exception as exc:
                self._failed(f"metric {key!r} at step {step}: {type(exc).__name__}: {exc}", 1)
                continue
            if self.source is not None:
                line["source"] = self.source
            lines.append(line)
            self.last[name] = value
        return lines

    def _wait_for_flush(self) -> None:
        # Back-pressure: the producer outpaces the writer; wait until it takes the buffer.
        thread = self._thread
        if not thread.is_alive() or threading.current_thread() is thread:
            self.flush()
            return
        self._taken.clear()
        self._wake.set()
        self._taken.wait(timeout=5.0)

    def _loop(self) -> None:
        now = time.monotonic()
        next_flush, next_tick = now + self.interval, now + self.tick_interval
        while not self._stop.is_set():
            woken = self._wake.wait(max(0.0, min(next_flush, next_tick) - time.monotonic()))
            if self._stop.is_set():
                break
            now = time.monotonic()
            # The heartbeat and the summary go first: they never wait behind a metrics backlog.
            if now >= next_tick:
                next_tick = now + self.tick_interval
                self._tick()
            if woken or now >= next_flush:
                self._wake.clear()
                next_flush = now + self.interval
                try:
                    self.flush()
                except Exception as exc:  # the thread must outlive anything it meets
                    self._failed(f"{type(exc).__name__}: {exc}", 0)

    def _tick(self) -> None:
        if self._on_tick is not None:
            try:
                self._on_tick()
            except Exception:  # a heartbeat must never kill logging
                pass

    def flush(self) -> None:
        """Write what is buffered at this moment (safe from any thread; never raises OSError)."""
        with self._lock:
            buffer = self._buffer
            popleft = buffer.popleft
            batch = [popleft() for _ in range(len(buffer))]
            self._taken.set()
            if not batch:
                return
            self.changed = True
            try:
                append_bytes(self.path, _serialise(batch, self._failed))
            except OSError as exc:
                self._failed(_describe(exc), len(batch))

    def _failed(self, reason: str, count: int) -> None:
        with self._failures:
            self.dropped += count
            if self._first_error is None:
                self._first_error = reason

    def write_event(self, event: Mapping[str, Any]) -> None:
        """Append a control line (e.g. a resume marker) after flushing pending metrics."""
        self.flush()
        append_lines(self.path, [json.dumps(dict(event))], fsync=True)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        try:
            self.flush()
        except Exception as exc:
            self._failed(f"{type(exc).__name__}: {exc}", 0)


def _serialise(batch: list[dict[str, Any]], failed: Callable[[str, int], None]) -> bytes:
    """The lines of ``batch``, one JSON object each, all serialised by one orjson call (floats as
    the shortest text that reads back as the same float, as ``repr`` writes them). A line that
    cannot be serialised (an int past 64 bits, a step that is not a number) is written by the
    standard library, or counted with ``failed`` when it cannot be written at all."""
    try:
        import orjson
    except ModuleNotFoundError:  # installed without its dependencies: the slow way
        pass
    else:
        try:
            text = orjson.dumps(batch)
        except (TypeError, orjson.JSONEncodeError):
            pass
        else:
            # Each object starts with "step" and holds no object: objects are separated by
            # '},{"step":' and nothing inside a string can look like that (its quotes are escaped).
            return text[1:-1].replace(b'},{"step":', b'}\n{"step":') + b"\n"
    lines = []
    for line in batch:
        try:
            lines.append(json.dumps(line, separators=(",", ":"), allow_nan=False))
        except (TypeError, ValueError) as exc:
            failed(f"metric {line.get('key')!r} at step {line.get('step')}: {exc}", 1)
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def _as_step(step: Any) -> Any:
    try:
        return operator.index(step)  # numpy and torch integers
    except TypeError:
        pass
    if isinstance(step, float) and math.isfinite(step):
        return float(step)
    raise UsageError(
        f"Metric step {step!r} ({type(step).__name__}) is not an integer. Pass step=int(...)."
    )


def _convert(values: dict[Any, Any], step: Any) -> None:
    """Replace each value by the plain number it holds now (in place); refuse what is not one."""
    for key, value in values.items():
        if type(value) in _KEPT:
            continue
        if isinstance(value, int):  # bool and other subclasses (IntEnum) as the plain int
            values[key] = int(value)
        elif isinstance(value, float):  # numpy float64 is a float subclass
            values[key] = float(value)
        elif isinstance(value, str):
            values[key] = str(value)
        else:
            values[key] = _number(key, value, step)


def _number(key: Any, value: Any, step: Any) -> Any:
    try:
        item = getattr(value, "item", None)
        number = item() if callable(item) else value  # numpy scalars, 1-element arrays, tensors
        if isinstance(number, bool):
            return int(number)
        if type(number) in _KEPT:
            return number
        return float(number)
    except Exception as exc:
        raise UsageError(
            f"Metric {key!r} at step {step} is {_describe_value(value)}, not a number "
            f"({type(exc).__name__}: {exc}). Log one number per key: a scalar (x.item()) or a "
            "summary statistic (float(x.mean())); keep other things in run.summary or a file "
            "in run.dir."
        ) from exc


def _describe_value(value: Any) -> str:
    if value is None:
        return "None"
    kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
    shape = getattr(value, "shape", None)
    try:
        return f"a {kind} of shape {tuple(shape)}" if shape is not None else f"a {kind}"
    except Exception:
        return f"a {kind}"


def _describe(exc: OSError) -> str:
    prefix = "disk full: " if exc.errno == errno.ENOSPC else ""
    return f"{prefix}{type(exc).__name__}: {exc}"


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
