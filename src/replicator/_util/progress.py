"""One progress helper for long work: a rich bar on a terminal, silence everywhere else.

Library functions accept a ``progress`` object with two methods (``set_total`` and ``advance``)
and never print; the CLI creates one with :func:`progress_bar` and passes it in::

    with progress_bar("Hashing", unit="bytes") as bar:
        fingerprint(path, progress=bar)

The bar appears only when stderr is a terminal, and only once the work has lasted
``delay_s`` seconds, so quick commands and piped output stay clean. ``unit="bytes"`` shows
sizes and bytes/s; any other unit shows counts and items/s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

__all__ = ["NullProgress", "Progress", "progress_bar"]


class Progress(Protocol):
    """What long-running library code reports to: a total (when known) and increments."""

    def set_total(self, total: int | None) -> None: ...

    def advance(self, amount: int = 1) -> None: ...


class NullProgress:
    """A progress sink that does nothing (library default, non-terminal output)."""

    def set_total(self, total: int | None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass


class _RichProgress:
    """Starts a rich bar lazily, after ``delay_s``, so short work shows nothing."""

    def __init__(self, description: str, *, unit: str, delay_s: float, stream: Any) -> None:
        self._description = description
        self._unit = unit
        self._delay_s = delay_s
        self._stream = stream
        self._total: int | None = None
        self._done = 0
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def set_total(self, total: int | None) -> None:
        self._total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def advance(self, amount: int = 1) -> None:
        self._done += amount
        if self._bar is None:
            if time.monotonic() - self._started < self._delay_s:
                return
            self._start()
        self._bar.update(self._task, completed=self._done)

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        if self._unit == "bytes":
            columns: list[Any] = [DownloadColumn(binary_units=True), TransferSpeedColumn()]
        else:
            columns = [MofNCompleteColumn(), _rate_column(self._unit)]
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            *columns,
            TimeRemainingColumn(),
            console=Console(file=self._stream),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self._description, total=self._total, completed=self._done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@contextmanager
def progress_bar(
    description: str,
    *,
    unit: str = "bytes",
    total: int | None = None,
    enabled: bool | None = None,
    delay_s: float = 0.5,
) -> Iterator[Progress]:
    """A progress sink: a rich bar if stderr is a terminal (or ``enabled``), else a no-op."""
    stream = sys.stderr
    if enabled is None:
        enabled = bool(getattr(stream, "isatty", lambda: False)())
    if not enabled:
        sink = NullProgress()
        yield sink
        return
    bar = _RichProgress(description, unit=unit, delay_s=delay_s, stream=stream)
    bar.set_total(total)
    try:
        yield bar
    finally:
        bar.close()


def _rate_column(unit: str) -> Any:
    """Items per second for counted (non-byte) work; rich only ships a bytes/s column."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.0f} {unit}/s" if speed else f"? {unit}/s")

    return RateColumn()
