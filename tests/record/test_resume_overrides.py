"""``replicator run --set`` never vanishes silently: a script that gives ``start()`` a dict of its
own (which the overrides never reached) is stopped with a message naming them."""

from __future__ import annotations

import json
from pathlib import Path

from ..conftest import git, run_cli

OWN_DICT = """\
import replicator

config = {"lr": 0.5, "epochs": 2}
with replicator.start(config) as run:
    for step in range(config["epochs"]):
        run.log({"loss": config["lr"] / (step + 1)}, step=step)
"""

FROM_LOAD_CONFIG = """\
from omegaconf import OmegaConf
import replicator

config = OmegaConf.to_container(replicator.load_config("config.yaml"))
with replicator.start(config) as run:
    run.log({"loss": config["lr"]}, step=0)
"""


def _project(tmp_path: Path, script: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q", "-b", "main")
    (project / "train.py").write_text(script)
    (project / "config.yaml").write_text("lr: 0.5\nepochs: 2\n")
    (project / ".gitignore").write_text("store/\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "train")
    return project


def _only_run(project: Path) -> dict[str, object]:
    (run_dir,) = (project / "store" / "runs").iterdir()
    meta: dict[str, object] = json.loads((run_dir / "run.json").read_text())
    return meta


def test_set_not_reaching_a_dict_given_to_start_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path, OWN_DICT)
    env = {"REPLICATOR_STORE": str(project / "store")}
    result = run_cli(
        "run", "--set", "lr=0.1", "--set", "epochs=2", "--", "python", "train.py",
        cwd=project, env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert (
        "Error: --set lr=0.1 not applied: the script passed its own dict to replicator.start()"
        in result.stderr
    )
    assert "epochs=2 not applied" not in result.stderr  # the dict already says epochs: 2
    assert "replicator.load_config(...)" in result.stderr
    meta = _only_run(project)
    assert meta["status"] == "failed"
    metrics = project / "store" / "runs" / str(meta["id"]) / "metrics.jsonl"
    assert not metrics.exists() or not metrics.read_text().strip()


def test_set_applied_by_load_config_passes_through_a_plain_dict(tmp_path: Path) -> None:
    project = _project(tmp_path, FROM_LOAD_CONFIG)
    env = {"REPLICATOR_STORE": str(project / "store")}
    result = run_cli("run", "--set", "lr=0.1", "--", "python", "train.py", cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    meta = _only_run(project)
    assert meta["status"] == "completed"
    assert meta["config"]["lr"] == 0.1  # type: ignore[index]
