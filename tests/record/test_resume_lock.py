"""One ``replicator run --resume`` of a run at a time: concurrent resumes of a crashed run, a
resume of a run still alive, and resume locks left by a killed launcher (this host) or by a
launcher on another host whose heartbeat went quiet."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..conftest import git, run_cli, start_cli, wait_for_files

# Prints a metric per step; stops at step 3 in its first session (to be killed there). A later
# session starts from progress.txt, says so with a mark, and waits for marks/go before going on.
SCRIPT = """\
import os, time
from pathlib import Path

marks = Path(os.environ["MARK_DIR"])
progress = Path("progress.txt")
resumed = progress.exists()
step = int(progress.read_text()) if resumed else 0
if resumed:
    (marks / f"session-{os.getpid()}").touch()
    while not (marks / "go").exists():
        time.sleep(0.02)
while step < 6:
    step += 1
    print(f"step {step} | loss {1 / (step + 1):.6f}", flush=True)
    progress.write_text(str(step))
    if step == 3 and not resumed:
        (marks / "pid").write_text(str(os.getpid()))
        time.sleep(600)
"""
PATTERN = r"step (?P<step>\d+) \| loss (?P<loss>[-0-9.e+]+)"
HOST = socket.gethostname()


def _project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    project = tmp_path / "project"
    (project / "marks").mkdir(parents=True)
    git(project, "init", "-q", "-b", "main")
    (project / "train.py").write_text(SCRIPT)
    (project / ".gitignore").write_text("store/\nmarks/\nprogress.txt\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "train")
    return project, {"REPLICATOR_STORE": str(project / "store"), "MARK_DIR": str(project / "marks")}


def _kill(proc: subprocess.Popen[str], script_pid: int) -> None:
    """SIGKILL the launcher and its script: nothing gets to write an end."""
    proc.kill()
    with contextlib.suppress(ProcessLookupError):
        os.kill(script_pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def _crashed_run(project: Path, env: dict[str, str], *, check_alive: bool = False) -> Path:
    """A run whose launcher and script were killed with SIGKILL at step 3."""
    proc = start_cli(
        "run", "--metric-pattern", PATTERN, "--", "python", "train.py", cwd=project, env=env
    )
    wait_for_files(project / "marks" / "pid", proc)
    (run_dir,) = (project / "store" / "runs").iterdir()
    if check_alive:
        # The first session still runs (fresh heartbeat): a resume is refused, naming it.
        alive = run_cli("run", "--resume", run_dir.name, cwd=project, env=env)
        assert alive.returncode == 2, alive.stderr
        assert f"Run {run_dir.name} is still running: pid {proc.pid} on {HOST}" in alive.stderr
        assert "s ago. Stop it before resuming" in alive.stderr
        assert "resumes" not in json.loads((run_dir / "run.json").read_text())
    _kill(proc, int((project / "marks" / "pid").read_text()))
    (project / "marks" / "pid").unlink()
    return run_dir


def _steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [int(json.loads(line)["step"]) for line in lines if '"loss"' in line]


def _sessions(project: Path) -> list[Path]:
    return sorted((project / "marks").glob("session-*"))


def test_eight_concurrent_resumes_of_a_crashed_run_run_exactly_one(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    run_dir = _crashed_run(project, env, check_alive=True)

    procs = [start_cli("run", "--resume", run_dir.name, cwd=project, env=env) for _ in range(8)]
    try:
        deadline = time.monotonic() + 120
        while sum(p.poll() is not None for p in procs) < 7 and time.monotonic() < deadline:
            assert len(_sessions(project)) <= 1, "several resumed sessions run at once"
            time.sleep(0.05)
        ended = [p for p in procs if p.poll() is not None]
        (winner,) = [p for p in procs if p.poll() is None]
        holder = json.loads((run_dir / "resume.lock").read_text())
        assert (holder["pid"], holder["host"]) == (winner.pid, HOST)
    finally:
        (project / "marks" / "go").touch()  # a failed test leaves no waiting script behind
    for proc in ended:
        out, _ = proc.communicate()
        assert proc.returncode == 2, out
        assert f"Run {run_dir.name} is already being resumed by pid {winner.pid} on {HOST}" in out
        assert "Only one resume of a run runs at a time" in out
    out, _ = winner.communicate(timeout=120)
    assert winner.returncode == 0, out

    assert len(_sessions(project)) == 1
    steps = _steps(run_dir)
    assert len(steps) == len(set(steps)), steps  # no metric logged twice
    assert {4, 5, 6} <= set(steps)
    meta = json.loads((run_dir / "run.json").read_text())
    assert [r["previous_status"] for r in meta["resumes"]] == ["crashed"]
    assert meta["status"] == "completed"
    assert not (run_dir / "resume.lock").exists()


def test_lock_of_a_killed_resume_is_taken_over(tmp_path: Path) -> None:
    project, env = _project(tmp_path)
    run_dir = _crashed_run(project, env)
    first = start_cli("run", "--resume", run_dir.name, cwd=project, env=env)
    while not _sessions(project):
        assert first.poll() is None, first.communicate()[0]
        time.sleep(0.02)
    _kill(first, int(_sessions(project)[0].name.split("-")[1]))
    assert json.loads((run_dir / "resume.lock").read_text())["pid"] == first.pid

    (project / "marks" / "go").touch()
    second = run_cli("run", "--resume", run_dir.name, cwd=project, env=env)
    assert second.returncode == 0, second.stderr
    assert (
        f"took over the resume lock left by pid {first.pid} on {HOST}, which is no longer "
        "running" in second.stderr
    )
    meta = json.loads((run_dir / "run.json").read_text())
    assert [r["previous_status"] for r in meta["resumes"]] == ["crashed", "crashed"]
    assert meta["status"] == "completed"
    assert not (run_dir / "resume.lock").exists()


def test_lock_from_another_host_is_stale_after_heartbeat_stale_s(tmp_path: Path) -> None:
    """A launcher on another node (shared store) took the lock and went quiet 30 s ago."""
    project, env = _project(tmp_path)
    run_dir = _crashed_run(project, env)
    lock = run_dir / "resume.lock"
    quiet = time.time() - 30
    lock.write_text(json.dumps({"host": "node-17", "pid": 4242, "since": quiet, "token": "t"}))
    for path in (lock, run_dir / "heartbeat"):
        os.utime(path, (quiet, quiet))

    refused = run_cli("run", "--resume", run_dir.name, cwd=project, env=env)
    assert refused.returncode == 2, refused.stderr
    assert "is already being resumed by pid 4242 on node-17" in refused.stderr
    assert re.search(r"last heartbeat 3\d s ago", refused.stderr)

    (project / "replicator.yaml").write_text("heartbeat_stale_s: 20\n")
    env_wins = run_cli(
        "run",
        "--resume",
        run_dir.name,
        cwd=project,
        env={**env, "REPLICATOR_HEARTBEAT_STALE_S": "60"},
    )
    assert env_wins.returncode == 2, env_wins.stderr
    assert "pid 4242 on node-17" in env_wins.stderr

    (project / "marks" / "go").touch()
    taken = run_cli("run", "--resume", run_dir.name, cwd=project, env=env)
    assert taken.returncode == 0, taken.stderr
    assert (
        "took over the resume lock left by pid 4242 on node-17, which gave no sign of life "
        "(heartbeat) for more than 20 s" in taken.stderr
    )
    assert len(json.loads((run_dir / "run.json").read_text())["resumes"]) == 1
    assert not lock.exists()
