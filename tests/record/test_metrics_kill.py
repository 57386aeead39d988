"""A kill -9 loses at most about the last second of metrics at any logging rate (real scripts).

A script logging flat out (one key a call, or fifty) is killed with SIGKILL: the newest line on
disk is recent, and the capture beside the script (environment.json, hardware.json), the
heartbeat and the summary were written although the script held the interpreter the whole time.
A line torn by the kill stays alone on its line when the run is resumed; the reader warns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from replicator.store.metrics import read_metrics

FLAT_OUT = """
import sys, replicator
run = replicator.start({"lr": 0.1}, seed=1)
names = [f"k{j}" for j in range(int(sys.argv[1]))]
print(run.dir, flush=True)
i = 0
while True:
    run.log({name: float(i) for name in names}, step=i)
    i += 1
"""


def _start(repo: Path, code: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
    (repo / "script.py").write_text(textwrap.dedent(code))
    proc = subprocess.Popen(
        [sys.executable, "script.py", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def _kill(proc: subprocess.Popen[str]) -> float:
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.time()
    proc.communicate(timeout=30)  # also closes the pipe
    return killed


@pytest.mark.parametrize("keys", [1, 50])
def test_kill_9_while_logging_flat_out_loses_at_most_the_last_second(repo: Path, keys: int) -> None:
    proc, run_dir = _start(repo, FLAT_OUT, str(keys))
    time.sleep(3)
    killed = _kill(proc)
    entries = read_metrics(run_dir / "metrics.jsonl")  # a torn last line is skipped silently
    assert entries, "no metric reached the disk in 3 s of logging"
    newest = max(entry["time"] for entry in entries)
    assert killed - newest <= 1.5, f"the newest line was {killed - newest:.2f} s old at the kill"
    assert {entry["key"] for entry in entries[-keys:]} == {f"k{j}" for j in range(keys)}
    for name in ("environment.json", "hardware.json", "code.json", "heartbeat", "summary.json"):
        assert (run_dir / name).exists(), f"{name} missing after 3 s of flat-out logging"
    assert json.loads((run_dir / "environment.json").read_text())["packages"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["k0"] > 0  # the summary followed the metrics while the backlog was high


TORN_RESUME = """
import sys, time, numpy as np, replicator
if sys.argv[1] == "first":
    run = replicator.start({"lr": 0.1}, seed=3)
    for step in range(20):
        run.log({"loss": float(step)}, step=step)
    run.checkpoint({"w": np.zeros(2)}, step=19)
    for step in range(20, 30):
        run.log({"loss": float(step)}, step=step)
    run.flush()
    print(run.dir, flush=True)
    time.sleep(60)
else:
    with replicator.start(resume=sys.argv[2]) as run:
        ckpt = run.load_checkpoint()
        for step in range(ckpt.step + 1, ckpt.step + 6):
            run.log({"loss": 100.0 + step}, step=step)
    print(run.dir, flush=True)
"""


def test_a_line_torn_by_a_kill_stays_alone_and_resume_appends_whole_lines(repo: Path) -> None:
    proc, run_dir = _start(repo, TORN_RESUME, "first")
    _kill(proc)
    path = run_dir / "metrics.jsonl"
    data = path.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    torn = data[: len(data) - 1 - len(last) // 2]  # the kill came in the middle of a write
    path.write_bytes(torn)

    resumed = subprocess.run(
        [sys.executable, "script.py", "resume", run_dir.name],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    lines = path.read_bytes().split(b"\n")
    fragment = lines.index(torn.rsplit(b"\n", 1)[-1])
    marker = json.loads(lines[fragment + 1])
    assert marker["event"] == "resume" and marker["step"] == 19
    after = [json.loads(line) for line in lines[fragment + 2 :] if line]
    assert [(e["step"], e["value"]) for e in after] == [(s, 100.0 + s) for s in range(20, 25)]

    with pytest.warns(RuntimeWarning, match=r"metrics.jsonl: skipped damaged line \d+"):
        entries = read_metrics(path)
    assert [(e["step"], e["value"]) for e in entries] == [
        *((s, float(s)) for s in range(20)),
        *((s, 100.0 + s) for s in range(20, 25)),
    ]
