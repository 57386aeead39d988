"""Metrics parsed from a script's output through a crash and a resume (issue 11, item 7), and
what `show` says about them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from replicator.store import Store
from replicator.store.metrics import read_metrics

from ..conftest import run_cli

PATTERN = r"step (?P<step>\d+) \| loss (?P<loss>[-0-9.]+)"
# An unmodified script: its own step counter starts at 0 in every process.
SCRIPT = """
import os, time
if os.path.exists("resumed"):
    for s in range(8):
        print(f"step {s} | loss {5 - s / 10:.2f}", flush=True)
else:
    for s in range(5):
        print(f"step {s} | loss {10 - s:.2f}", flush=True)
    print("waiting", flush=True)
    time.sleep(120)
"""


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _summary(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def test_crashed_and_resumed_output_metrics_are_shown_superseded_and_recorded(repo: Path) -> None:
    (repo / "p.py").write_text(SCRIPT)
    args = ["run", "--metric-pattern", PATTERN, "--", "python", "p.py"]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "replicator", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert launcher.stdout is not None
    for line in launcher.stdout:
        if line.strip() == "waiting":
            break
    (record,) = Store(repo / ".replicator").records()
    # The summary follows the parsed metrics while the script runs.
    _wait_for(lambda: _summary(record.dir).get("loss") == 6.0)
    launcher.send_signal(signal.SIGKILL)
    launcher.communicate(timeout=30)
    (record,) = Store(repo / ".replicator").records()
    assert record.status == "crashed"
    assert record.summary == {"loss": 6.0}
    listing = run_cli("ls", cwd=repo).stdout
    assert "loss=6" in listing
    shown = run_cli("show", record.id, cwd=repo).stdout
    assert "loss:                  6  (5 points, steps 0..4, from output)" in shown

    (repo / "resumed").write_text("")
    resumed = run_cli("run", "--resume", record.id, cwd=repo)
    assert resumed.returncode == 0, resumed.stderr
    (record,) = Store(repo / ".replicator").records()
    assert record.status == "completed"
    history = read_metrics(record.dir / "metrics.jsonl")
    pairs = Counter((m["key"], m["step"]) for m in history)
    assert max(pairs.values()) == 1  # no duplicate (key, step)
    assert [(m["step"], m["value"]) for m in history] == [(s, 5 - s / 10) for s in range(8)]
    assert len(read_metrics(record.dir / "metrics.jsonl", include_superseded=True)) == 13
    assert record.summary == {"loss": 4.3}
    (entry,) = record.meta["resumes"]
    assert entry["command"] == ["python", "p.py"]
    assert entry["command_run"] == ["python", "p.py"]
    shown = run_cli("show", record.id, cwd=repo).stdout
    assert "loss:                  4.3  (8 points, steps 0..7, from output)" in shown
    assert "resume 1:              python p.py" in shown


def test_show_counts_one_point_in_the_singular(repo: Path) -> None:
    (repo / "one.py").write_text("print('step 7 | loss 0.50')\n")
    proc = run_cli("run", "--metric-pattern", PATTERN, "--", "python", "one.py", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    shown = run_cli("show", "last", cwd=repo).stdout
    assert "loss:                  0.5  (1 point, step 7, from output)" in shown
    # a run recorded without a summary (a 0.1.0 crash) still shows its metric history
    (Store(repo / ".replicator").records()[0].dir / "summary.json").unlink()
    shown = run_cli("show", "last", cwd=repo).stdout
    assert "loss:                  0.5  (1 point, step 7, from output)" in shown
