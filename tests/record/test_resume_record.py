"""What a run killed with SIGKILL and resumed with ``replicator run --resume`` records: the same
checkpoint files, byte for byte, and the same summary as a run never interrupted."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from ..conftest import git, run_cli, start_cli, wait_for_files

HERE = Path(__file__).parent
STEPS = 24


def _project(tmp_path: Path, name: str) -> Path:
    project = tmp_path / name
    (project / "marks").mkdir(parents=True)
    git(project, "init", "-q", "-b", "main")
    shutil.copy(HERE / "resume_train_numpy.py", project / "train.py")
    (project / ".gitignore").write_text("store/\nmarks/\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "train")
    return project


def _env(project: Path, delay: float) -> dict[str, str]:
    return {
        "REPLICATOR_STORE": str(project / "store"),
        "MARK_DIR": str(project / "marks"),
        "TRAIN_STEPS": str(STEPS),
        "STEP_DELAY": str(delay),
    }


def _run_dir(project: Path) -> Path:
    (run_dir,) = (project / "store" / "runs").iterdir()
    return run_dir


def _checkpoint_files(run_dir: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((run_dir / "checkpoints").glob("*.safetensors"))
    }


def _last_loss(run_dir: Path) -> float:
    from replicator.store.metrics import read_metrics

    losses = [e for e in read_metrics(run_dir / "metrics.jsonl") if e["key"] == "loss"]
    assert [e["step"] for e in losses] == list(range(1, STEPS + 1))
    return float(losses[-1]["value"])


def _kill_mid_way(project: Path) -> tuple[Path, dict[str, object]]:
    """Start the run, SIGKILL the script at step 14 (after the summary was first written)."""
    proc = start_cli(
        "run", "--seed", "7", "--", "python", "train.py", cwd=project, env=_env(project, 0.1)
    )
    marks = project / "marks"
    wait_for_files([marks / "14", marks / "pid"], proc)
    run_dir = _run_dir(project)
    wait_for_files([run_dir / "summary.json"], proc)
    os.kill(int((marks / "pid").read_text()), signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGKILL, out  # the killed script's own end
    assert not (marks / str(STEPS)).exists(), "killed too late"
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def test_killed_and_resumed_run_has_the_uninterrupted_checkpoints_and_summary(
    tmp_path: Path,
) -> None:
    reference = _project(tmp_path, "reference")
    done = run_cli(
        "run", "--seed", "7", "--", "python", "train.py", cwd=reference, env=_env(reference, 0)
    )
    assert done.returncode == 0, done.stderr
    want_dir = _run_dir(reference)

    killed = _project(tmp_path, "killed")
    run_dir, at_crash = _kill_mid_way(killed)
    resumed = run_cli("run", "--resume", run_dir.name, cwd=killed, env=_env(killed, 0))
    assert resumed.returncode == 0, resumed.stderr

    # Checkpoint files byte-identical: no generator entry the uninterrupted run lacks.
    want_files = _checkpoint_files(want_dir)
    assert len(want_files) == STEPS // 4
    assert _checkpoint_files(run_dir) == want_files

    # The summary follows the metrics logged after the resume, not the value at the crash.
    final = _last_loss(run_dir)
    assert final == _last_loss(want_dir)
    assert at_crash["loss"] != final
    want_summary = json.loads((want_dir / "summary.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == want_summary
    assert summary["loss"] == final
    assert set(summary) == {"loss", "best_loss", "warmup_loss"}
    env = _env(killed, 0)
    shown = run_cli("show", run_dir.name, "--json", cwd=killed, env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["summary"]["loss"] == final
    listed = run_cli("ls", "--json", cwd=killed, env=env)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["summary"]["loss"] == final


PRINTING_SCRIPT = """\
import os, sys, time
from pathlib import Path

progress = Path("progress.txt")
step = int(progress.read_text()) if progress.exists() else 0
marks = Path(os.environ["MARK_DIR"])
(marks / "pid").write_text(str(os.getpid()))
while step < 12:
    step += 1
    print(f"step {step} | loss {1 / (step + 1):.6f}", flush=True)
    progress.write_text(str(step))
    (marks / str(step)).touch()
    time.sleep(float(os.environ["STEP_DELAY"]))
"""


def test_resumed_run_summary_follows_metrics_parsed_after_the_resume(tmp_path: Path) -> None:
    project = tmp_path / "printing"
    (project / "marks").mkdir(parents=True)
    git(project, "init", "-q", "-b", "main")
    (project / "train.py").write_text(PRINTING_SCRIPT)
    (project / ".gitignore").write_text("store/\nmarks/\nprogress.txt\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "train")
    env = _env(project, 0.1)
    pattern = r"step (?P<step>\d+) \| loss (?P<loss>[-0-9.e+]+)"
    proc = start_cli(
        "run", "--metric-pattern", pattern, "--", "python", "train.py", cwd=project, env=env
    )
    wait_for_files([project / "marks" / "5", project / "marks" / "pid"], proc)
    os.kill(int((project / "marks" / "pid").read_text()), signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGKILL, out  # the killed script's own end
    run_dir = _run_dir(project)
    at_crash = json.loads((run_dir / "summary.json").read_text())["loss"]
    assert at_crash > 1 / 12

    resumed = run_cli("run", "--resume", run_dir.name, cwd=project, env={**env, "STEP_DELAY": "0"})
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "summary.json").read_text())["loss"] == pytest.approx(1 / 13)
    shown = run_cli("show", run_dir.name, "--json", cwd=project, env=env)
    assert json.loads(shown.stdout)["summary"]["loss"] == pytest.approx(1 / 13)
