"""Bit-exact resume through the real CLI: a run killed with SIGKILL and resumed equals one that
was never interrupted (final parameters bitwise, metric history for every step)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replicator.store.metrics import read_metrics

HERE = Path(__file__).parent
SEED = "3"


def _env(project: Path, steps: int, delay: float) -> dict[str, str]:
    return {
        **os.environ,
        "REPLICATOR_STORE": str(project / "store"),
        "MARK_DIR": str(project / "marks"),
        "FINAL": str(project / "final.out"),
        "TRAIN_STEPS": str(steps),
        "STEP_DELAY": str(delay),
    }


def _project(tmp_path: Path, name: str) -> Path:
    project = tmp_path / name
    (project / "marks").mkdir(parents=True)
    return project


def _launch(project: Path, script: str, env: dict[str, str], *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "replicator", "run", *extra]
    if not extra:
        cmd += ["--seed", SEED, "--", sys.executable, str(HERE / script)]
    return subprocess.Popen(
        cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return out


def _run_dir(project: Path) -> Path:
    (run_dir,) = (project / "store" / "runs").iterdir()
    return run_dir


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {path.name}: {proc.communicate()[0]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {path}")
        time.sleep(0.005)


def _gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    pytest.fail(f"process {pid} still alive")


def _history(run_dir: Path) -> list[tuple[int, str, float]]:
    return sorted(
        (e["step"], e["key"], e["value"]) for e in read_metrics(run_dir / "metrics.jsonl")
    )


def _statuses(run_dir: Path) -> list[str]:
    lines = (run_dir / "status.jsonl").read_text().splitlines()
    return [json.loads(line)["status"] for line in lines]


class _Reference:
    """One uninterrupted run of ``script``, started now and running beside the killed one."""

    def __init__(self, tmp_path: Path, script: str, steps: int) -> None:
        self.project = _project(tmp_path, "reference")
        self.proc = _launch(self.project, script, _env(self.project, steps, 0.0))
        self.finished = False

    def done(self) -> Path:
        if not self.finished:
            _finish(self.proc)
            self.finished = True
        return self.project


def _kill_and_resume(tmp_path: Path, ref: _Reference, script: str, steps: int, victim: str) -> Path:
    """Run ``script``, kill it at a random step, resume it; check the record against ``reference``."""
    killed = _project(tmp_path, "killed")
    env = _env(killed, steps, 0.03)
    k = random.randint(3, steps - 4)
    proc = _launch(killed, script, env)
    _wait_for(killed / "marks" / str(k), proc)
    child = int((killed / "marks" / "pid").read_text())
    if victim == "child":
        os.kill(child, signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGKILL  # the command's own end, as a shell says
    else:  # the recorder: the child gets SIGTERM through PR_SET_PDEATHSIG
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)  # reaps the launcher, so the run reads as crashed
        _gone(child)
    assert not (killed / "final.out").exists(), f"killed at step {k} too late"
    run_dir = _run_dir(killed)
    reached = max(int(p.name) for p in (killed / "marks").iterdir() if p.name.isdigit())
    assert reached < steps, f"kill at step {k} came after the end"

    resume = _launch(killed, script, {**env, "STEP_DELAY": "0"}, "--resume", run_dir.name)
    out = _finish(resume)
    assert "completed" in out
    statuses = _statuses(run_dir)
    assert statuses[0] == "running" and statuses[-1] == "completed", statuses
    assert statuses[1] == ("failed" if victim == "child" else "crashed"), statuses
    assert statuses[2] == "running", statuses

    reference = ref.done()
    ref_history, got_history = _history(_run_dir(reference)), _history(run_dir)
    assert [s for s, _, _ in got_history] == list(range(1, steps + 1)), f"kill at {k}"
    assert got_history == ref_history, f"metric history differs after a kill at step {k}"
    superseded = [
        e
        for e in read_metrics(run_dir / "metrics.jsonl", include_superseded=True)
        if e.get("superseded")
    ]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    (resumed_from,) = [x["step"] for x in lines if x.get("event") == "resume"]
    assert resumed_from <= reached
    assert all(e["step"] > resumed_from for e in superseded)
    return killed


TORCH_STEPS = 30


@pytest.fixture(scope="module")
def torch_reference(tmp_path_factory: pytest.TempPathFactory) -> _Reference:
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    return _Reference(tmp_path_factory.mktemp("torch"), "ckpt_train_torch.py", TORCH_STEPS)


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["child", "recorder"])
def test_torch_training_killed_and_resumed_is_bitwise_identical(
    tmp_path: Path, torch_reference: _Reference, victim: str
) -> None:
    import torch
    from safetensors.torch import load_file

    killed = _kill_and_resume(tmp_path, torch_reference, "ckpt_train_torch.py", TORCH_STEPS, victim)
    want = load_file(str(torch_reference.done() / "final.out"))
    got = load_file(str(killed / "final.out"))
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(want[name], got[name]), name


@pytest.mark.slow
def test_numpy_training_killed_and_resumed_is_bitwise_identical(tmp_path: Path) -> None:
    import numpy as np

    reference = _Reference(tmp_path, "ckpt_train_numpy.py", 40)
    killed = _kill_and_resume(tmp_path, reference, "ckpt_train_numpy.py", 40, "recorder")
    want = np.load(reference.done() / "final.out.npy")
    got = np.load(killed / "final.out.npy")
    assert want.tobytes() == got.tobytes()
