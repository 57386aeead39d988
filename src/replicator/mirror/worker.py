"""The mirror worker: feeds a run's sinks from its ``metrics.jsonl``, off the training loop.

Each sink gets a *feed*, a daemon thread that tails rank 0's ``metrics.jsonl`` from the byte
offset the sink has received (``mirrors.json``), turns whole lines into :class:`Point` batches,
and hands them to the sink. The training loop never waits on a sink: it only appends to the local
file, which stays the record. A sink that raises is reported once (one line with the cause),
retried with exponential backoff (0.5 s doubling to 30 s), and its state says how far it got; at
the end :meth:`MirrorWorker.close` sends the summary, ``run.json`` and the status, waits a bounded
time, and returns one line per sink that did not receive everything. What is left unsent stays a
*gap* that ``replicator mirror RUN --to NAME`` fills later from the same offset.

A resume marker (``{"event": "resume", "step": N}``) is passed on with :meth:`Sink.send_resume`
in order, so that a tool that can drop superseded values does so. Lines that are damaged or hold
no number are skipped (the offset moves past them).
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.io import read_json
from .._util.warnings import warn
from ..redact import redact_config, redact_text, secret_values
from ..store.metrics import decode_value, metrics_path
from .base import Point, RunInfo, Sink
from .state import read_mirrors, write_mirrors

__all__ = ["MirrorWorker", "read_run_info"]

POLL_S = 0.5
"""Seconds between two looks at metrics.jsonl (the metrics writer flushes every 0.5 s)."""
BATCH = 1000
"""Points per ``send_metrics`` call at most."""
BACKOFF_S = (0.5, 30.0)
"""First and largest wait between two tries of a failing sink."""
CLOSE_TIMEOUT_S = 60.0
"""How long the end of a run waits for its sinks, by default."""
_READ_BYTES = 4 << 20

Report = Callable[[str], None]


@dataclass(frozen=True)
class _Item:
    end: int  # byte offset just past this line
    point: Point | None = None
    resume: int | None = None  # a resume marker's step


def read_items(path: Path, offset: int, *, limit: int = _READ_BYTES) -> list[_Item]:
    """The whole lines of ``path`` after byte ``offset`` (at most about ``limit`` bytes)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(limit)
    except FileNotFoundError:
        return []
    cut = data.rfind(b"\n")
    if cut < 0:
        return []
    items: list[_Item] = []
    position = offset
    for raw in data[: cut + 1].splitlines(keepends=True):
        position += len(raw)
        items.append(_parse(raw, position))
    return items


def _parse(raw: bytes, end: int) -> _Item:
    try:
        obj = json.loads(raw)
    except ValueError:
        return _Item(end)
    if not isinstance(obj, dict):
        return _Item(end)
    if obj.get("event") == "resume":
        step = obj.get("step")
        return _Item(
            end, resume=step if isinstance(step, int) and not isinstance(step, bool) else None
        )
    key, value = obj.get("key"), decode_value(obj.get("value"))
    if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float)):
        return _Item(end)
    step = obj.get("step")
    stamp = obj.get("time")
    point = Point(
        key=key,
        value=float(value),
        step=step if isinstance(step, int) and not isinstance(step, bool) else None,
        time=float(stamp) if isinstance(stamp, (int, float)) else time.time(),
    )
    return _Item(end, point=point)


def read_run_info(run_dir: Path) -> RunInfo:
    """What the sinks are told about a run: its ids, config (secrets redacted) and tags."""
    try:
        meta = read_json(run_dir / "run.json")
    except (OSError, ValueError):
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    config: dict[str, Any] = meta["config"] if isinstance(meta.get("config"), dict) else {}
    config_hash = meta.get("config_hash")
    try:  # the config the script loaded (written when it joins), not yet adopted into run.json
        script = read_json(run_dir / "config" / "script.json")
        if isinstance(script, dict) and isinstance(script.get("config"), dict):
            config = {**script["config"], "seed": meta.get("seed")}
            config_hash = script.get("config_hash") or config_hash
    except (OSError, ValueError):
        pass
    code: dict[str, Any] = meta["code"] if isinstance(meta.get("code"), dict) else {}
    tags = {
        "commit": code.get("commit"),
        "snapshot_ref": code.get("snapshot_ref"),
        "config_hash": config_hash,
        "seed": meta.get("seed"),
        "replicator_version": meta.get("replicator_version"),
        "status": meta.get("status"),
    }
    return RunInfo(
        run_id=str(meta.get("id") or run_dir.name),
        experiment=str(meta.get("experiment") or "default"),
        name=meta.get("name") if isinstance(meta.get("name"), str) else None,
        run_dir=run_dir,
        config=redact_config(config, secrets=secret_values(os.environ)),
        tags={k: str(v) for k, v in tags.items() if v is not None},
        started=float(meta.get("started") or time.time()),
    )


def read_final_summary(run_dir: Path) -> dict[str, float]:
    """The numbers of ``summary.json`` (non-finite ones decoded)."""
    try:
        data = read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, float] = {}
    for key, value in data.items():
        value = decode_value(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out


class MirrorWorker:
    """The feeds of one run's sinks; ``start`` them, ``close`` at the end of the run."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        sinks: Sequence[Sink] = (),
        *,
        on_warning: Report | None = None,
        ready: Callable[[], None] | None = None,
        poll: float = POLL_S,
        requests: Callable[[], Mapping[str, Sink]] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.path = metrics_path(self.run_dir)
        self.poll = poll
        self.on_warning = on_warning or _warn
        self.ready = ready
        self.requests = requests
        self.closing = threading.Event()
        self.status = "completed"
        self.abandoned = False
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._parsed: dict[int, list[_Item]] = {}  # offset -> the lines read from there
        self._state = read_mirrors(self.run_dir)
        self._feeds: list[_Feed] = []
        self._watcher: threading.Thread | None = None
        for sink in sinks:
            self.add(sink)

    @property
    def names(self) -> list[str]:
        return [feed.sink.name for feed in self._feeds]

    def add(self, sink: Sink) -> None:
        """Feed one more sink (started at once when the worker runs)."""
        with self._lock:
            if sink.name in self.names:
                return
            feed = _Feed(self, sink, dict(self._state.get(sink.name) or {}))
            self._feeds.append(feed)
            if self._watcher is not None:
                feed.start()

    def start(self) -> MirrorWorker:
        for feed in self._feeds:
            feed.start()
        self._watcher = threading.Thread(
            target=self._watch, name="replicator-mirror-requests", daemon=True
        )
        if self.requests is not None:
            self._watcher.start()
        return self

    def _watch(self) -> None:
        assert self.requests is not None
        while not self.closing.wait(self.poll):
            try:
                for sink in self.requests().values():
                    self.add(sink)
            except Exception as exc:  # a bad request never stops the run
                self.report(f"mirror: {redact_text(str(exc))}")
                return

    def close(self, status: str, *, timeout: float = CLOSE_TIMEOUT_S) -> list[str]:
        """Send what is left, the summary, run.json and ``status``; wait for each sink until
        it has made no progress for ``timeout`` seconds (at most ten times that in all).
        Returns a line for each sink that did not receive everything."""
        self.status = status
        if self.requests is not None:  # a request that came in the last moment
            try:
                for sink in self.requests().values():
                    self.add(sink)
            except Exception:
                pass
        self.closing.set()
        started = time.monotonic()
        for feed in self._feeds:
            # a sink that makes progress gets more time (up to ten times the timeout)
            while feed.thread is not None and feed.thread.is_alive():
                now = time.monotonic()
                quiet = now - max(started, feed.progress)
                if quiet >= timeout or now - started >= 10 * timeout:
                    break
                feed.thread.join(min(0.5, timeout - quiet))
        with self._lock:
            self.abandoned = True  # a feed still trying leaves its last state as it is
            for feed in self._feeds:
                if feed.thread is not None and feed.thread.is_alive():
                    feed.entry["status"] = "failed" if not feed.entry.get("sent_points") else "gap"
                    self._state[feed.sink.name] = dict(feed.entry)
            if self._feeds:
                self._write()
        lines = [line for feed in self._feeds if (line := feed.outcome())]
        for line in lines:
            self.report(line)
        return lines

    def read(self, offset: int) -> list[_Item]:
        """The whole lines after ``offset``, parsed once for all feeds: they move through the
        file together, so the next feed asks for the same offset and gets the same lines."""
        with self._read_lock:
            cached = self._parsed.get(offset)
        if cached is not None:
            return cached
        items = read_items(self.path, offset)
        if items:
            with self._read_lock:
                self._parsed[offset] = items
                while len(self._parsed) > 16:
                    del self._parsed[next(iter(self._parsed))]
        return items

    def report(self, line: str) -> None:
        try:
            self.on_warning(line)
        except Exception:
            pass

    def save(self, feed: _Feed) -> None:
        with self._lock:
            if self.abandoned:
                return
            feed.entry["updated"] = time.time()
            self._state[feed.sink.name] = dict(feed.entry)
            self._write()

    def _write(self) -> None:
        try:
            write_mirrors(self.run_dir, self._state)
        except OSError:
            pass  # the next save tries again; the run's own record is untouched


class _Feed:
    """One sink's thread: open, send batches from the offset, retry, close."""

    def __init__(self, worker: MirrorWorker, sink: Sink, entry: dict[str, Any]) -> None:
        self.worker = worker
        self.sink = sink
        self.entry = entry
        entry.update(name=sink.name, status="sending")
        entry.setdefault("where", "")
        entry.setdefault("sent_points", 0)
        entry.setdefault("offset", 0)
        entry.setdefault("errors", [])
        entry["options"] = _recordable(sink.options)
        if "ref" in entry or entry.get("sent_points"):
            sink.previous = dict(entry)
        self.was_closed = bool(entry.get("closed"))
        entry["closed"] = self.was_closed
        self.opened = False
        self.failures = 0
        self.progress = 0.0  # time.monotonic() of the last call of the sink that succeeded
        self.close_failures = 0
        self.failing = False
        self.thread: threading.Thread | None = None
        self._last_save = 0.0

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._run, name=f"replicator-mirror-{self.sink.name}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        worker = self.worker
        try:  # importing the tool takes seconds: done while the script starts
            importlib.import_module(self.sink.module)
        except Exception:
            pass  # open() says what is wrong
        self.progress = time.monotonic()
        if worker.ready is not None:
            try:
                worker.ready()
            except Exception:
                pass
        while not worker.abandoned and not self._given_up():
            closing = worker.closing.is_set()  # read before the file: nothing logged is missed
            items = worker.read(int(self.entry["offset"]))
            if items:
                self._send(items)
            elif closing:
                break
            else:
                worker.closing.wait(worker.poll)
        if self.opened or not self.was_closed:
            while not worker.abandoned and not self._given_up():
                if self._finish():
                    break
        if self.entry["closed"]:
            self.entry["status"] = "ok"
        else:
            self.entry["status"] = "gap" if self.opened or self.entry["sent_points"] else "failed"
        worker.save(self)

    def _given_up(self) -> bool:
        """At the end of the run a failing sink gets two more tries; the rest is a gap."""
        return self.close_failures >= 2

    def _attempt(self, what: Callable[[], None]) -> bool:
        """Run one call of the sink; on failure report (once), count and wait the backoff."""
        try:
            what()
        except Exception as exc:
            cause = " ".join(redact_text(f"{type(exc).__name__}: {exc}").split())[:500]
            self.failures += 1
            closing = self.worker.closing.is_set()
            self.close_failures += closing
            self.entry["failures"] = self.failures
            if not self.entry["errors"]:
                self.entry["errors"] = [cause]
            self.entry["status"] = "gap"
            if not self.failing:
                self.failing = True
                self.worker.report(
                    f"mirror {self.sink.name}: {cause}; retrying with backoff. The run goes on "
                    "and its local record is complete."
                )
            self.worker.save(self)
            first, most = BACKOFF_S
            if closing:
                time.sleep(first)
            else:  # the end of the run cuts the wait short
                self.worker.closing.wait(min(most, first * 2 ** min(self.failures - 1, 10)))
            return False
        self.progress = time.monotonic()
        if self.failing:
            self.failing = False
            self.entry["status"] = "sending"
        return True

    def _open(self) -> None:
        self.sink.open(read_run_info(self.worker.run_dir))
        self.opened = True
        self.entry["closed"] = False
        self.entry["where"] = self.sink.where()
        ref = self.sink.ref()
        if ref:
            self.entry["ref"] = str(ref)

    def _send(self, items: list[_Item]) -> bool:
        """Send ``items`` in order; False at the first failure (the caller reads them again
        from the offset, which moved past what was sent)."""
        if not self.opened and not self._attempt(self._open):
            return False
        batch: list[Point] = []
        batch_end = 0
        for item in items:
            if item.resume is not None:
                if batch and not self._sent(batch, batch_end):
                    return False
                batch = []
                if not self._attempt(functools.partial(self.sink.send_resume, item.resume)):
                    return False
                self.entry["offset"] = item.end
            elif item.point is not None:
                batch.append(item.point)
                batch_end = item.end
                if len(batch) >= BATCH:
                    if not self._sent(batch, batch_end):
                        return False
                    batch = []
            elif batch:
                batch_end = item.end  # a skipped line goes with the batch before it
            else:
                self.entry["offset"] = item.end
        return not batch or self._sent(batch, batch_end)

    def _sent(self, batch: list[Point], end: int) -> bool:
        if not self._attempt(lambda: self.sink.send_metrics(batch)):
            return False
        self.entry["offset"] = end
        self.entry["sent_points"] = int(self.entry["sent_points"]) + len(batch)
        now = time.monotonic()
        if now - self._last_save >= 1.0:
            self._last_save = now
            self.worker.save(self)
        return True

    def _finish(self) -> bool:
        """Summary, run.json and status into the tool; False after a failed try."""
        run_dir = self.worker.run_dir
        if not self.opened and not self._attempt(self._open):
            return False
        summary = read_final_summary(run_dir)
        if summary and not self._attempt(lambda: self.sink.send_summary(summary)):
            return False
        record = run_dir / "run.json"
        if record.exists() and not self._attempt(
            lambda: self.sink.send_artifact(record, "run.json")
        ):
            return False
        if not self._attempt(lambda: self.sink.close(self.worker.status)):
            return False
        self.entry["closed"] = True
        self.entry["status"] = "ok"
        self.entry["where"] = self.sink.where() or self.entry["where"]
        return True

    def outcome(self) -> str:
        """A line when this sink did not receive everything (or needed retries)."""
        status = self.entry.get("status")
        sent = self.entry.get("sent_points", 0)
        if status == "ok":
            if self.failures:
                return (
                    f"mirror {self.sink.name}: all {sent} points sent after {self.failures} "
                    f"failed tries -> {self.entry.get('where')}"
                )
            return ""
        waited = "no progress for a while after the run ended"
        cause = (self.entry.get("errors") or [waited])[0]
        return (
            f"mirror {self.sink.name}: {status}, {sent} points sent (first error: {cause}). "
            "The local record is complete; send the rest with: "
            f"replicator mirror {self.worker.run_dir.name} --to {self.sink.name}"
        )


def _recordable(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as mirrors.json keeps them: credentials in URLs or values redacted."""
    clean = redact_config(dict(options), secrets=secret_values(os.environ))
    return {k: v for k, v in clean.items() if _json_safe(v)}


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def _warn(line: str) -> None:
    warn(f"replicator: {line}", RuntimeWarning)
