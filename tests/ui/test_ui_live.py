"""Live updates of `replicator ui`: server-sent events of a run that is logging right now."""

from __future__ import annotations

import json
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .conftest import UiServer, UiStore, clean_env, replicator, start_ui

LIVE_SCRIPT = """\
import os, time
import replicator

run = replicator.start()
i = 0
while not os.path.exists("release") and i < 3000:
    run.log({"loss": 1.0 / (i + 1)}, step=i)
    print("step", i, flush=True)
    i += 1
    time.sleep(0.1)
print("finished", flush=True)
"""


class Events:
    """The events of one SSE stream, read in a thread: (arrival time, event, data)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.items: queue.Queue[tuple[float, str, Any]] = queue.Queue()
        self.status: int | None = None
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with httpx.stream("GET", self.url, timeout=httpx.Timeout(30, read=60)) as answer:
                self.status = answer.status_code
                event, data = "message", []
                for line in answer.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                    elif line == "" and data:
                        self.items.put((time.time(), event, json.loads("\n".join(data))))
                        event, data = "message", []
        except httpx.HTTPError:
            pass
        finally:
            self.closed.set()

    def next(self, timeout: float) -> tuple[float, str, Any]:
        return self.items.get(timeout=timeout)

    def until(self, name: str, timeout: float) -> list[tuple[float, str, Any]]:
        """Every event up to and including the first ``name``; fails after ``timeout``."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no '{name}' event within {timeout} s; got {[e[1] for e in seen]}"
            try:
                item = self.next(left)
            except queue.Empty:
                continue
            seen.append(item)
            if item[1] == name:
                return seen


class FileWatch:
    """When each metrics line first appeared on disk, by step (polled every 10 ms)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        offset = 0
        while not self.stop.is_set():
            try:
                with open(self.path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:
                data = b""
            end = data.rfind(b"\n")
            if end >= 0:
                now = time.time()
                for line in data[: end + 1].splitlines():
                    entry = json.loads(line)
                    if "key" in entry:
                        self.seen.setdefault(entry["step"], now)
                offset += end + 1
            time.sleep(0.01)


@contextmanager
def logging_run(project: Path) -> Iterator[tuple[Any, Path]]:
    """A real `replicator run` of LIVE_SCRIPT in ``project``, logging every 0.1 s until the
    block ends (it then writes ``release`` and waits for the run to end)."""
    (project / "live.py").write_text(LIVE_SCRIPT)
    proc = replicator("run", "-e", "live", "--", "python", "live.py", cwd=project, env=clean_env())
    try:
        runs = project / ".replicator" / "runs"
        deadline = time.monotonic() + 120
        while not (runs.is_dir() and any((p / "metrics.jsonl").exists() for p in runs.iterdir())):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the run did not start logging"
            time.sleep(0.02)
        yield proc, next(runs.iterdir())
    finally:
        (project / "release").write_text("")
        try:
            proc.communicate(timeout=60)
        except Exception:
            proc.kill()
            proc.communicate()


def test_a_running_run_streams_new_points_within_2_s(repo: Path) -> None:
    with logging_run(repo) as (_proc, run_dir), start_ui(repo / ".replicator") as server:
        watch = FileWatch(run_dir / "metrics.jsonl")
        events = Events(f"{server.base}/api/runs/{run_dir.name}/live")
        first = events.next(30)
        assert first[1] == "status" and first[2]["status"] == "running"
        listed = httpx.get(f"{server.base}/api/runs", timeout=30).json()["runs"]
        assert [(r["id"], r["status"]) for r in listed] == [(run_dir.name, "running")]
        arrived: dict[int, float] = {}
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            try:
                at, name, data = events.next(1)
            except queue.Empty:
                continue
            if name == "metrics":
                for step in data["loss"]["step"]:
                    arrived.setdefault(step, at)
        watch.stop.set()
        written = {s: t for s, t in watch.seen.items() if s in arrived}
        assert len(written) >= 10, (len(arrived), len(watch.seen))
        late = {s: round(arrived[s] - t, 2) for s, t in written.items() if arrived[s] - t > 2}
        assert not late, f"points that came more than 2 s after they were written: {late}"
        # the points of the stream are the file's, once each, in order
        steps = sorted(arrived)
        assert steps == list(range(steps[0], steps[-1] + 1))
        (repo / "release").write_text("")
        rest = events.until("end", 30)
        names = [name for _, name, _ in rest]
        assert names[-1] == "end"
        final = [data for _, name, data in rest if name == "status"]
        assert final[-1]["status"] == "completed"
        lines = [line for _, name, data in rest if name == "output" for line in data["lines"]]
        assert "finished" in lines
        assert events.closed.wait(10), "the stream did not end after the run completed"
        assert events.status == 200
        # the runs table the server keeps follows the run's end too
        listed = httpx.get(f"{server.base}/api/runs", timeout=30).json()["runs"]
        assert [(r["id"], r["status"]) for r in listed] == [(run_dir.name, "completed")]


def test_a_torn_last_line_waits_for_its_end(ui_store: UiStore, tmp_path: Path) -> None:
    # a copy of the running run: its recorder lives, so the copy reads 'running' too
    copy = tmp_path / "store"
    shutil.copytree(ui_store.store, copy, ignore=shutil.ignore_patterns("index*"))
    run_id = ui_store.one("running")
    metrics = copy / "runs" / run_id / "metrics.jsonl"
    with start_ui(copy) as server:
        offset = httpx.get(f"{server.base}/api/runs/{run_id}/metrics", timeout=30).json()["offset"]
        assert offset == metrics.stat().st_size
        with open(metrics, "a") as f:  # appended between the two requests: not lost
            f.write('{"step": 500, "time": 1.0, "key": "loss", "value": 0.25}\n')
        events = Events(f"{server.base}/api/runs/{run_id}/live?from={offset}")
        got = events.until("metrics", 10)
        assert got[-1][2] == {"loss": {"step": [500], "value": [0.25]}}
        with open(metrics, "a") as f:
            f.write('{"step": 501, "time": 1.0, "key": "loss", "va')
        time.sleep(1.5)  # three polls: the unfinished line is not sent, nor an error
        pending = []
        while not events.items.empty():
            pending.append(events.items.get())
        assert [name for _, name, _ in pending if name == "metrics"] == []
        with open(metrics, "a") as f:
            f.write('lue": 0.125}\n')
        got = events.until("metrics", 5)
        assert got[-1][2] == {"loss": {"step": [501], "value": [0.125]}}
        assert events.status == 200 and not events.closed.is_set()


def test_a_damaged_run_streams_its_state_and_ends(ui_server: UiServer, ui_store: UiStore) -> None:
    events = Events(f"{ui_server.base}/api/runs/{ui_store.one('damaged')}/live")
    got = events.until("end", 30)
    status = [data for _, name, data in got if name == "status"]
    assert status == [{"status": "damaged", "duration": None, "damaged": status[0]["damaged"]}]
    assert "is damaged" in status[0]["damaged"]
    assert events.closed.wait(10) and events.status == 200


def test_a_finished_run_sends_its_status_and_ends(ui_server: UiServer, ui_store: UiStore) -> None:
    events = Events(f"{ui_server.base}/api/runs/{ui_store.one('failed')}/live")
    got = events.until("end", 30)
    assert [data["status"] for _, name, data in got if name == "status"] == ["failed"]
    assert events.closed.wait(10)
    missing = httpx.get(f"{ui_server.base}/api/runs/20990101-000000-none/live", timeout=30)
    assert missing.status_code == 404 and "error" in missing.json()
