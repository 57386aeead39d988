"""Hydra apps under `replicator run` (composed config, overrides, multirun jobs as runs), the
code snapshot without Hydra's output folders, and the in-process callback (issue 13, item 3)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from replicator.store import Store

from ..conftest import git, run_cli

pytest.importorskip("hydra")

APP = Path(__file__).parents[2] / "examples" / "hydra_app"
CALLBACK = "+hydra.callbacks.replicator._target_=replicator.integrations.hydra.ReplicatorCallback"
SECRET = "hunter2-not-for-disk"


@pytest.fixture
def app(repo: Path) -> Path:
    """The example app in a real repository (without torch: no TensorBoard logs, faster)."""
    shutil.copytree(APP, repo, dirs_exist_ok=True)
    text = (
        (repo / "app.py")
        .read_text()
        .replace("from torch.utils.tensorboard import SummaryWriter", "raise ImportError")
    )
    (repo / "app.py").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "app")
    return repo


def _run(app: Path, *args: str) -> Path:
    known = set(Store.open(app).run_dirs())
    result = run_cli("run", "--", "python", "app.py", *args, cwd=app)
    assert result.returncode == 0, result.stderr
    # the launching run (a multirun's jobs are runs of their own, "launcher": "hydra-multirun")
    (run_dir,) = [
        d
        for d in set(Store.open(app).run_dirs()) - known
        if json.loads((d / "run.json").read_text())["launcher"] == "cli"
    ]
    return run_dir


def _on_disk(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_the_composed_config_and_overrides_are_the_runs_config(app: Path) -> None:
    run_dir = _run(app, "model=big", "optim.lr=0.1", f"+db.password={SECRET}")
    record = Store.open(app).get(run_dir.name)

    composed = {
        "model": {"width": 256, "depth": 8},
        "steps": 5,
        "optim": {"lr": 0.1, "name": "sgd"},
        "db": {"password": "<redacted>"},
    }
    assert record.config == composed
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == composed
    assert "model.width,256" in (run_dir / "hparams.csv").read_text()
    hydra_files = sorted(p.name for p in (run_dir / "config" / "hydra").iterdir())
    assert hydra_files == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    overrides = yaml.safe_load((run_dir / "config" / "hydra" / "overrides.yaml").read_text())
    assert overrides["overrides"] == ["model=big", "optim.lr=0.1", "+db.password=<redacted>"]
    hydra = yaml.safe_load((run_dir / "config" / "hydra" / "hydra.yaml").read_text())["hydra"]
    assert hydra["runtime"]["choices"]["model"] == "big"
    assert record.meta["hydra"]["dir"].startswith("outputs/")
    # the secret reached the app, never the record
    assert SECRET not in _on_disk(run_dir)


def test_a_multirun_records_one_run_per_job(app: Path) -> None:
    parent = _run(app, "-m", "optim.lr=0.1,0.01", "model=small,big")
    store = Store.open(app)
    listed = store.get(parent.name).meta["hydra_multirun"]

    assert [(j["job"], j["overrides"]) for j in listed] == [
        (0, ["optim.lr=0.1", "model=small"]),
        (1, ["optim.lr=0.1", "model=big"]),
        (2, ["optim.lr=0.01", "model=small"]),
        (3, ["optim.lr=0.01", "model=big"]),
    ]
    for job in listed:
        child = store.get(job["run"])
        assert child.meta["parent"] == parent.name
        assert child.status == "completed"
        assert child.config["optim"]["lr"] == float(job["overrides"][0].split("=")[1])
        width = {"small": 32, "big": 256}[job["overrides"][1].split("=")[1]]
        assert child.config["model"]["width"] == width
        assert (child.dir / "config" / "hydra" / "hydra.yaml").exists()
        assert json.loads((child.dir / "code.json").read_text())["commit"] == git(
            app, "rev-parse", "HEAD"
        )


def test_hydra_output_folders_never_enter_the_code_snapshot(app: Path) -> None:
    for args in (["optim.lr=0.2"], ["-m", "optim.lr=0.3"]):
        subprocess.run([sys.executable, "app.py", *args], cwd=app, check=True, timeout=120)
    run_dir = _run(app, "optim.lr=0.4")  # outputs/ and multirun/ exist, untracked, at its start

    code = json.loads((run_dir / "code.json").read_text())
    files = git(app, "ls-tree", "-r", "--name-only", code["snapshot"]).splitlines()
    assert "app.py" in files
    assert not [f for f in files if f.startswith(("outputs/", "multirun/"))]
    assert {item["path"] for item in code["left_out"]} >= {"outputs", "multirun"}


def test_the_callback_records_each_job_in_process(app: Path) -> None:
    run = subprocess.run(
        [sys.executable, "app.py", "-m", "optim.lr=0.1,0.2", CALLBACK],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    records = sorted(Store.open(app).records(), key=lambda r: r.meta["name"])
    assert [r.meta["name"] for r in records] == ["optim.lr=0.1", "optim.lr=0.2"]
    for record, lr in zip(records, (0.1, 0.2)):
        assert record.status == "completed"
        assert record.meta["experiment"] == "app"
        assert record.config["optim"]["lr"] == lr
        assert (record.dir / "config" / "hydra" / "overrides.yaml").exists()
        assert json.loads((record.dir / "summary.json").read_text())["hydra_return"] > 0


def test_the_callback_records_a_failed_job(app: Path) -> None:
    text = (app / "app.py").read_text().replace("    return loss\n", "    raise ValueError(loss)\n")
    (app / "app.py").write_text(text)
    run = subprocess.run(
        [sys.executable, "app.py", CALLBACK], cwd=app, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1
    (record,) = Store.open(app).records()
    assert record.status == "failed"
    assert record.meta["error"].startswith("ValueError: ")
