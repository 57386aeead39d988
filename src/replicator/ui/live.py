"""``/api/runs/{id}/live``: server-sent events of a run as it goes.

Every :data:`POLL_S` the stream looks at the run's files and sends what changed: ``metrics``
(the points appended to metrics.jsonl since the last event, read from a byte offset; an
unfinished last line waits for the next poll), ``output`` (new complete lines of stdout.log and
stderr.log), ``status`` (when the status changes: running, then completed, failed, crashed...).
A ``: keepalive`` comment goes out every :data:`KEEPALIVE_S` seconds. Once the run is final, the
last points and lines are sent, then ``event: end``, and the stream closes. A damaged run gets a
``status`` event saying so, then ``end``.

``?from=OFFSET`` starts the metrics at that byte offset (the ``offset`` of
``/api/runs/{id}/metrics``, so that no point falls between the two requests); by default the
stream starts at the end of what is written now.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..store.metrics import metrics_path
from ..store.record import FINAL_STATUSES, read_run
from .metrics import MetricsTail

__all__ = ["KEEPALIVE_S", "POLL_S", "live"]

POLL_S = 0.5
KEEPALIVE_S = 15.0
MAX_EVENT_POINTS = 5000  # per key and event; more are downsampled (the chart reloads on demand)
MAX_EVENT_LINES = 500


def _line_start(path: Path) -> int:
    """The offset just after the last newline of ``path`` (0 when none, or no file)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            pos = size
            while pos > 0:
                step = min(65536, pos)
                pos -= step
                f.seek(pos)
                block = f.read(step)
                at = block.rfind(b"\n")
                if at >= 0:
                    return pos + at + 1
    except OSError:
        return 0
    return 0


class _OutputTail:
    """New complete lines of one output file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = _line_start(path)

    def read(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:
                    self.offset = 0
                if size == self.offset:
                    return []
                f.seek(self.offset)
                data = f.read(min(size - self.offset, 4 * 1024 * 1024))
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        lines = data[:end].decode("utf-8", "replace").split("\n")
        return lines[-MAX_EVENT_LINES:]


class _Watch:
    """What one stream has sent of a run, and what is new since."""

    def __init__(self, run_dir: Path, stale_after: float, start: int | None) -> None:
        self.run_dir = run_dir
        self.stale_after = stale_after
        path = metrics_path(run_dir)
        self.metrics = MetricsTail(path, offset=_line_start(path) if start is None else start)
        self.outputs = {s: _OutputTail(run_dir / f"{s}.log") for s in ("stdout", "stderr")}
        self.status: str | None = None

    def poll(self) -> tuple[list[str], bool]:
        """The events to send now and whether the run is final (or damaged)."""
        events = []
        final = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                record = read_run(self.run_dir, partial=True, stale_after=self.stale_after)
                status, duration, damaged = record.status, record.duration, None
            except Exception as exc:
                status, duration, damaged = "damaged", None, str(exc)
        final = status in FINAL_STATUSES or status == "damaged"
        new, resumes, restarted = self.metrics.read()
        if restarted or resumes:
            events.append(_event("resume", {"step": min(resumes) if resumes else None}))
        if new:
            events.append(_event("metrics", _points(new)))
        for stream, tail in self.outputs.items():
            lines = tail.read()
            if lines:
                events.append(_event("output", {"stream": stream, "lines": lines}))
        if status != self.status or final:
            self.status = status
            payload: dict[str, Any] = {"status": status, "duration": duration}
            if damaged:
                payload["damaged"] = damaged
            events.append(_event("status", payload))
        return events, final


def _points(new: dict[str, Any]) -> dict[str, Any]:
    from .lttb import downsample

    out = {}
    for key, series in new.items():
        if len(series.step) > MAX_EVENT_POINTS:
            import numpy as np

            x, y, _ = downsample(
                np.asarray(series.step, dtype=np.float64),
                np.asarray(series.value, dtype=np.float64),
                MAX_EVENT_POINTS,
            )
            out[key] = {"step": [int(s) for s in x.tolist()], "value": y.tolist()}
        else:
            out[key] = {"step": series.step, "value": series.value}
    return out


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, allow_nan=False, default=str)}\n\n"


async def live(request: Any) -> Any:
    """The event stream of one run (see the module docstring)."""
    import anyio
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import StreamingResponse

    from .api import ApiError, error_response, resolve_run

    store = request.app.state.store
    raw_from = request.query_params.get("from")
    try:
        run_dir = await run_in_threadpool(
            resolve_run, request.app.state.runs, request.path_params["run_id"]
        )
        start = int(raw_from) if raw_from not in (None, "") else None
        if start is not None and start < 0:
            raise ValueError
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except ValueError:
        return error_response(400, "'from' must be a byte offset (a whole number >= 0).")
    except Exception as exc:
        return error_response(400, str(exc))
    watch = _Watch(run_dir, store.heartbeat_stale_s, start)

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        last_sent = time.monotonic()
        while True:
            batch, final = await run_in_threadpool(watch.poll)
            for text in batch:
                yield text
            if batch:
                last_sent = time.monotonic()
            if final:
                yield _event("end", {"status": watch.status})
                return
            if time.monotonic() - last_sent >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                last_sent = time.monotonic()
            await anyio.sleep(POLL_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
