"""A run continued with ``replicator run --resume`` uses the config it was recorded with: the
``-c`` file of its first session (not the script's default path) and, when that file changed
since, the recorded values, with one warning naming the file."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from ..conftest import git, run_cli, start_cli, wait_for_files

SCRIPT = """\
import os, time
from pathlib import Path
import replicator

marks = Path(os.environ["MARK_DIR"])
cfg = replicator.load_config("configs/short.yaml")
cfg = replicator.load_config("configs/short.yaml")  # a second load: still one warning
assert cfg.get("password") == "hunter22-secret", cfg.get("password")  # never the redacted record
(marks / "pid").write_text(str(os.getpid()))
progress = Path("progress.txt")
start = int(progress.read_text()) if progress.exists() else 0
with replicator.start(cfg) as run:
    for step in range(start + 1, cfg.epochs + 1):
        run.log({"loss": cfg.lr / step}, step=step)
        progress.write_text(str(step))
        (marks / str(step)).touch()
        time.sleep(float(os.environ["STEP_DELAY"]))
    run.summary["epochs"] = cfg.epochs
"""


LONG = "epochs: {epochs}\nlr: 0.5\npassword: hunter22-secret\n"


@pytest.mark.parametrize("edited", [False, True])
def test_resume_uses_the_recorded_config_file_and_values(tmp_path: Path, edited: bool) -> None:
    project = tmp_path / "project"
    marks = project / "marks"
    marks.mkdir(parents=True)
    git(project, "init", "-q", "-b", "main")
    (project / "train.py").write_text(SCRIPT)
    (project / "configs").mkdir()
    (project / "configs" / "long.yaml").write_text(LONG.format(epochs=8))
    (project / "configs" / "short.yaml").write_text("epochs: 4\nlr: 0.1\n")
    (project / ".gitignore").write_text("store/\nmarks/\nprogress.txt\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "train")
    env = {
        "REPLICATOR_STORE": str(project / "store"),
        "MARK_DIR": str(marks),
        "STEP_DELAY": "0.1",
    }
    proc = start_cli(
        "run", "-c", "configs/long.yaml", "--", "python", "train.py", cwd=project, env=env
    )
    wait_for_files(marks / "2", proc)
    os.kill(int((marks / "pid").read_text()), signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGKILL, out  # the killed script's own end
    (run_dir,) = (project / "store" / "runs").iterdir()
    recorded = json.loads((run_dir / "config" / "script.json").read_text())
    assert recorded["config"]["epochs"] == 8
    assert recorded["config"]["password"] == "<redacted>"
    if edited:
        (project / "configs" / "long.yaml").write_text(LONG.format(epochs=6))

    resumed = run_cli("run", "--resume", run_dir.name, cwd=project, env={**env, "STEP_DELAY": "0"})
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 8
    assert summary["loss"] == pytest.approx(0.5 / 8)
    warning = "long.yaml changed since the run was recorded (epochs: 8 -> 6)"
    assert resumed.stderr.count(warning) == (1 if edited else 0), resumed.stderr
    # The record keeps the config the run was recorded with.
    assert json.loads((run_dir / "config" / "script.json").read_text()) == recorded
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["config_hash"] == recorded["config_hash"]
    assert "epochs: 8" in (run_dir / "config.yaml").read_text()
