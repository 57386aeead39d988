"""A run's metrics for the UI: read ``metrics.jsonl`` incrementally from a byte offset.

:class:`MetricsTail` reads the lines appended since its last call (an unfinished last line is
left for the next call: a live writer may be in the middle of it). :class:`MetricsCache` keeps
one tail and the points read so far per file, so that the chart of a million points parses the
file once and a growing file only its new bytes. A resume marker (``{"event": "resume", "step":
N}``) drops the points logged before it with a step after N, as
:func:`replicator.store.metrics.read_metrics` does; points that are not finite numbers (text,
NaN, infinities) are left out of the curves (the CSV export has every line).
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store.metrics import decode_value, metrics_path

__all__ = ["MetricsCache", "MetricsTail", "Series", "scan_keys"]

_MAX_CHUNK = 256 * 1024 * 1024  # bytes parsed per call, so one request stays bounded


@dataclass
class Series:
    """The points of one metric: steps, values and times, in the order logged."""

    step: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)

    # (points, steps, values) as numpy arrays, for the points up to ``points``
    _arrays: tuple[int, Any, Any] | None = field(default=None, repr=False, compare=False)

    def drop_after(self, step: int) -> None:
        """Forget the points with a step after ``step`` (superseded by a resume)."""
        keep = [i for i, s in enumerate(self.step) if s <= step]
        if len(keep) == len(self.step):
            return
        self.step = [self.step[i] for i in keep]
        self.value = [self.value[i] for i in keep]
        self.time = [self.time[i] for i in keep]
        self._arrays = None

    def arrays(self) -> tuple[Any, Any]:
        """(steps, values) as float64 numpy arrays; only points appended since the last call
        are converted."""
        import numpy as np

        n = len(self.step)
        done = self._arrays
        if done is not None and done[0] == n:
            return done[1], done[2]
        if done is not None and done[0] < n:
            x = np.concatenate([done[1], np.asarray(self.step[done[0] :], dtype=np.float64)])
            y = np.concatenate([done[2], np.asarray(self.value[done[0] :], dtype=np.float64)])
        else:
            x = np.asarray(self.step, dtype=np.float64)
            y = np.asarray(self.value, dtype=np.float64)
        self._arrays = (n, x, y)
        return x, y


class MetricsTail:
    """Reads the complete lines appended to one metrics file since the last :meth:`read`."""

    def __init__(self, path: Path, *, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self._inode: int | None = None

    def read(self) -> tuple[dict[str, Series], list[int], bool]:
        """(new points by key, resume steps seen, whether the file was replaced and reading
        started again from its start)."""
        restarted = False
        if self.path.is_symlink():
            return {}, [], restarted  # it may lead out of the store
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if (
                    self._inode is not None and st.st_ino != self._inode
                ) or st.st_size < self.offset:
                    self.offset = 0
                    restarted = True
                self._inode = st.st_ino
                if st.st_size == self.offset:
                    return {}, [], restarted
                f.seek(self.offset)
                data = f.read(min(st.st_size - self.offset, _MAX_CHUNK))
        except FileNotFoundError:
            return {}, [], restarted
        end = data.rfind(b"\n")
        if end < 0:
            return {}, [], restarted  # only an unfinished line so far
        data = data[: end + 1]
        self.offset += len(data)
        new, resumes = parse_lines(data)
        return new, resumes, restarted


def parse_lines(data: bytes) -> tuple[dict[str, Series], list[int]]:
    """The points of complete metrics lines, by key, and the steps of resume markers (each with
    the points before it in ``data`` already dropped)."""
    text = data.decode("utf-8", "replace")
    try:
        # one call into the C parser for the whole chunk; a damaged line falls back below
        objects = json.loads("[" + text.rstrip("\n").replace("\n", ",") + "]")
    except ValueError:
        objects = []
        for line in text.splitlines():
            try:
                objects.append(json.loads(line))
            except ValueError:
                continue
    out: dict[str, Series] = {}
    resumes: list[int] = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        key = obj.get("key")
        if key is None:
            step = obj.get("step")
            if (
                obj.get("event") == "resume"
                and isinstance(step, int)
                and not isinstance(step, bool)
            ):
                resumes.append(step)
                for earlier in out.values():
                    earlier.drop_after(step)
            continue
        value = decode_value(obj.get("value"))
        step = obj.get("step", 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value) or isinstance(step, bool) or not isinstance(step, int):
            continue
        stamp = obj.get("time")
        series = out.setdefault(str(key), Series())
        series.step.append(step)
        series.value.append(float(value))
        series.time.append(float(stamp) if isinstance(stamp, (int, float)) else math.nan)
    return out, resumes


class _Entry:
    def __init__(self, path: Path) -> None:
        self.tail = MetricsTail(path)
        self.series: dict[str, Series] = {}
        self.lock = threading.Lock()

    def update(self) -> None:
        while True:
            before = self.tail.offset
            new, resumes, restarted = self.tail.read()
            if restarted:
                self.series = {}
            for step in resumes:
                for series in self.series.values():
                    series.drop_after(step)
            for key, points in new.items():
                mine = self.series.setdefault(key, Series())
                mine.step.extend(points.step)
                mine.value.extend(points.value)
                mine.time.extend(points.time)
            if self.tail.offset == before or self.tail.offset - before < _MAX_CHUNK:
                return


class MetricsCache:
    """The points read so far of each metrics file the server was asked about, kept up to date
    by reading only what was appended since."""

    def __init__(self, *, max_files: int = 64) -> None:
        self._entries: dict[Path, _Entry] = {}
        self._lock = threading.Lock()
        self.max_files = max_files

    def series(self, run_dir: Path, *, rank: int = 0) -> tuple[dict[str, Series], int]:
        """Every metric of the run (rank ``rank``) as read up to now, and the byte offset read."""
        path = metrics_path(run_dir, rank)
        with self._lock:
            entry = self._entries.pop(path, None) or _Entry(path)
            self._entries[path] = entry  # most recently used last
            while len(self._entries) > self.max_files:
                self._entries.pop(next(iter(self._entries)))
        with entry.lock:
            entry.update()
            return dict(entry.series), entry.tail.offset

    def arrays(self, run_dir: Path, *, rank: int = 0) -> tuple[dict[str, tuple[Any, Any]], int]:
        """Every metric of the run as (steps, values) numpy arrays, and the byte offset read."""
        path = metrics_path(run_dir, rank)
        series, offset = self.series(run_dir, rank=rank)
        entry = self._entries.get(path)
        if entry is None:  # dropped by another request in between: convert without the lock
            return {k: v.arrays() for k, v in series.items()}, offset
        with entry.lock:
            return {k: v.arrays() for k, v in series.items()}, offset


def scan_keys(run_dir: Path, cache: MetricsCache | None = None) -> list[str]:
    """The metric names of a run (rank 0) in the order first logged."""
    if cache is not None:
        series, _ = cache.series(run_dir)
        return list(series)
    keys: dict[str, None] = {}
    try:
        with open(run_dir / "metrics.jsonl", "rb") as f:
            for line in f:
                start = line.find(b'"key": ')
                if start < 0:
                    continue
                try:
                    key, _ = json.JSONDecoder().raw_decode(line[start + 7 :].decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    continue
                if isinstance(key, str):
                    keys.setdefault(key)
    except OSError:
        return []
    return list(keys)
