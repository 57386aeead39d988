"""The experiment a script names with ``start(experiment=...)`` files the run from the moment the
script joins ``replicator run``: a run killed before it finished is found under that name."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from ..conftest import git, run_cli, start_cli, wait_for_files

SCRIPT = """\
import os, time
from pathlib import Path
import replicator

marks = Path(os.environ["MARK_DIR"])
(marks / "pid").write_text(str(os.getpid()))
while not (marks / "go").exists():
    time.sleep(0.01)
cfg = replicator.load_config("config.yaml")
with replicator.start(cfg, experiment="mlp") as run:
    for step in range(1, 1000):
        run.log({"loss": 1 / step}, step=step)
        (marks / str(step)).touch()
        time.sleep(0.05)
"""


def _ls(project: Path, env: dict[str, str], *args: str) -> list[dict[str, object]]:
    listed = run_cli("ls", "--json", *args, cwd=project, env=env)
    assert listed.returncode == 0, listed.stderr
    rows: list[dict[str, object]] = json.loads(listed.stdout)
    return rows


def test_crashed_run_is_filed_under_the_experiment_the_script_named(tmp_path: Path) -> None:
    project = tmp_path / "project"
    marks = project / "marks"
    marks.mkdir(parents=True)
    git(project, "init", "-q", "-b", "main")
    (project / "train.py").write_text(SCRIPT)
    (project / "config.yaml").write_text("lr: 0.1\n")
    (project / ".gitignore").write_text("store/\nmarks/\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "train")
    env = {"REPLICATOR_STORE": str(project / "store"), "MARK_DIR": str(marks)}
    proc = start_cli("run", "-c", "config.yaml", "--", "python", "train.py", cwd=project, env=env)
    wait_for_files(marks / "pid", proc)
    # Before the script joins, the launcher's guess (the config file's name); the index caches it.
    (before,) = _ls(project, env)
    assert before["experiment"] == "config"
    (marks / "go").touch()
    wait_for_files(marks / "3", proc)
    (running,) = _ls(project, env, "--experiment", "mlp")
    assert running["status"] == "running"
    assert _ls(project, env, "--experiment", "config") == []

    os.kill(proc.pid, signal.SIGKILL)  # the recorder; the script gets SIGTERM from the kernel
    proc.communicate(timeout=60)
    child = int((marks / "pid").read_text())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    (crashed,) = _ls(project, env, "--experiment", "mlp")
    assert crashed["status"] == "crashed"
    run_dir = project / "store" / "runs" / str(crashed["id"])
    assert json.loads((run_dir / "run.json").read_text())["experiment"] == "mlp"
