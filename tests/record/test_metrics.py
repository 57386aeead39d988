"""Metric logging: buffered appends, strict JSON lines, torn lines, superseded lines, patterns."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from replicator.errors import ConfigError
from replicator.record.metrics import MetricPattern, MetricsWriter
from replicator.store.metrics import read_metrics


def test_sustained_logging_reaches_the_file_within_a_second_at_the_default_interval(
    tmp_path: Path,
) -> None:
    """20 keys every 10 ms for 3 s from a training thread, the writer at its default interval:
    polled every 50 ms, the newest line on disk is never older than the interval plus 0.5 s,
    and after close every value is there, in order."""
    import threading

    from replicator.record.metrics import FLUSH_INTERVAL_S

    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    assert writer.interval == FLUSH_INTERVAL_S
    logged: list[tuple[int, float]] = []  # (step, time of the call)
    stop = threading.Event()

    def train() -> None:
        step = 0
        while not stop.is_set():
            writer.log({f"k{j}": step + j / 100 for j in range(20)}, step=step)
            logged.append((step, time.time()))
            step += 1
            time.sleep(0.01)

    thread = threading.Thread(target=train)
    thread.start()
    started = time.time()
    try:
        while time.time() - started < 3.0:
            time.sleep(0.05)
            on_disk = read_metrics(path)
            if time.time() - started < FLUSH_INTERVAL_S + 0.5:
                continue  # the first flush is still allowed to come
            newest = max((m["step"] for m in on_disk), default=-1)
            # the newest step the script had logged more than (interval + 0.5 s) ago
            due = [s for s, t in list(logged) if t < time.time() - (FLUSH_INTERVAL_S + 0.5)]
            if due:
                assert newest >= due[-1], f"step {due[-1]} logged long ago, newest on disk {newest}"
    finally:
        stop.set()
        thread.join()
        writer.close()
    entries = read_metrics(path)
    assert len(entries) == 20 * len(logged) and len(logged) > 100
    assert [m["step"] for m in entries[::20]] == [s for s, _ in logged]
    assert [m["key"] for m in entries[:20]] == [f"k{j}" for j in range(20)]


def test_values_are_strict_json_and_nonfinite_round_trip(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "m.jsonl"
    writer = MetricsWriter(path)
    writer.log(
        {"nan": float("nan"), "inf": float("inf"), "np": np.float32(0.25), "flag": True}, step=0
    )
    writer.close()
    for line in path.read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    values = {m["key"]: m["value"] for m in read_metrics(path)}
    assert math.isnan(values["nan"]) and values["inf"] == math.inf
    assert values["np"] == 0.25 and values["flag"] == 1


def test_torn_last_line_is_skipped_and_earlier_lines_never_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    writer = MetricsWriter(path)
    writer.log({"a": 1}, step=0)
    writer.flush()
    before = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"step": 1, "key": "a", "val')  # a kill in the middle of a write
    assert [m["step"] for m in read_metrics(path)] == [0]  # an unfinished last line: silent
    writer.log({"a": 2}, step=2)
    writer.close()
    assert path.read_bytes().startswith(before + b'{"step": 1, "key": "a", "val\n')
    with pytest.warns(RuntimeWarning, match="skipped damaged line 2"):
        assert [m["step"] for m in read_metrics(path)] == [0, 2]  # the next line is whole
    assert "a" in writer.last


def test_resume_marker_supersedes_later_steps_without_deleting(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    writer = MetricsWriter(path)
    for step in range(5):
        writer.log({"loss": float(step)}, step=step)
    writer.write_event({"event": "resume", "step": 2})
    writer.log({"loss": 30.0}, step=3)
    writer.close()
    assert [(m["step"], m["value"]) for m in read_metrics(path)] == [
        (0, 0.0),
        (1, 1.0),
        (2, 2.0),
        (3, 30.0),
    ]
    everything = read_metrics(path, include_superseded=True)
    assert [m["step"] for m in everything if m.get("superseded")] == [3, 4]


def test_any_key_and_source_text_round_trips_and_a_mixed_call_is_written_once(
    tmp_path: Path,
) -> None:
    # Lines are built from cached %-templates: a '%' or a quote in a key or in the source must
    # come out as written, and a call the fast path hands on (a string, NaN, numpy, an int key)
    # must be written once, in order.
    import numpy as np

    path = tmp_path / "m.jsonl"
    writer = MetricsWriter(path, source='stdout "%s" 100%')
    keys = ["loss", "%", "%s", "%r %d", 'say "hi"', "ünï", "a\\nb"]
    for step in range(3):
        writer.log({key: step + 0.125 for key in keys}, step=step)
    writer.log({"loss": 0.5, "text": "50% %s", "nan": math.nan, "np": np.float64(0.25), 7: True})
    writer.close()
    lines = path.read_text().splitlines()
    for line in lines:
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    entries = read_metrics(path)
    assert [(m["step"], m["key"], m["value"]) for m in entries[: 3 * len(keys)]] == [
        (step, key, step + 0.125) for step in range(3) for key in keys
    ]
    assert {m["source"] for m in entries} == {'stdout "%s" 100%'}
    mixed = [(m["key"], m["value"]) for m in entries[3 * len(keys) :]]
    assert mixed[:2] == [("loss", 0.5), ("text", "50% %s")]
    assert math.isnan(mixed[2][1]) and mixed[3:] == [("np", 0.25), ("7", 1)]
    assert writer.last["%r %d"] == 2.125 and writer.last["7"] == 1


def test_each_line_carries_the_time_of_its_call_not_of_the_write(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    writer = MetricsWriter(path, interval=60)  # only the explicit flush writes
    called = []
    for step in range(3):
        called.append(time.time())
        writer.log({"loss": 1.0, "acc": 0.5}, step=step)
        time.sleep(0.2)
    writer.flush()
    stamps = [m["time"] for m in read_metrics(path)]
    assert stamps[0::2] == stamps[1::2]  # one time for the values of one call
    for stamp, at in zip(stamps[0::2], called, strict=True):
        assert at - 0.002 <= stamp <= at + 0.05  # to the millisecond, at the call
    writer.close()


def test_metric_pattern_parses_and_validates() -> None:
    pattern = MetricPattern.compile(
        r"step (?P<step>\d+) \| loss (?P<loss>[-0-9.e]+)(?: \| acc (?P<acc>[0-9.]+))?"
    )
    assert pattern.parse("step 100 | loss 2.41") == (100, {"loss": 2.41})
    assert pattern.parse("step 7 | loss 1e-3 | acc 0.5") == (7, {"loss": 0.001, "acc": 0.5})
    assert pattern.parse("nothing here") is None
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        MetricPattern.compile("step (")
    with pytest.raises(ConfigError, match="no named group"):
        MetricPattern.compile(r"loss (\d+)")
