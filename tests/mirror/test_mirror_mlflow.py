"""The MLflow sink against a real `mlflow server` on 127.0.0.1 and a local sqlite store; a server
killed in the middle of a run, and `replicator mirror` filling the gap afterwards."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import git, run_cli, start_cli
from .servers import start_mlflow_server, stop_process

pytest.importorskip("mlflow")

TRAIN = """\
import os, pathlib, time
import replicator
cfg = {"optim": {"lr": 0.1}, "epochs": 3}
with replicator.start(cfg) as run:
    for step in range(10):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    flag = os.environ.get("WAIT_FOR")
    if flag:  # the test kills the server meanwhile
        run.flush()
        deadline = time.monotonic() + 60
        while not pathlib.Path(flag).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    for step in range(10, 20):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.summary["best"] = 0.05
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, object]]:
    """One real `mlflow server` for the module (its start takes seconds)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    process, url = start_mlflow_server(root)
    try:
        yield url, root, process
    finally:
        stop_process(process)


def _client(uri: str):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _setup(repo: Path, uri: str) -> None:
    (repo / "replicator.yaml").write_text(f"mirror:\n  mlflow:\n    tracking_uri: {uri}\n")
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "train")


def _run_dir(repo: Path) -> Path:
    (run_dir,) = (repo / ".replicator" / "runs").iterdir()
    return run_dir


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "mirrors.json").read_text())["mlflow"]


def test_run_sends_params_metrics_tags_and_record_to_a_server(repo: Path, server) -> None:
    url, _root, _process = server
    _setup(repo, url)
    done = run_cli("run", "-e", "mlp", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    run_dir = _run_dir(repo)
    meta = json.loads((run_dir / "run.json").read_text())
    state = _state(run_dir)
    assert (state["status"], state["sent_points"]) == ("ok", 20), (state, done.stderr)
    assert state["where"].startswith(f"{url}/#/experiments/")
    client = _client(url)
    remote = client.get_run(state["ref"])
    assert client.get_experiment(remote.info.experiment_id).name == "mlp"
    assert remote.info.status == "FINISHED"
    assert remote.info.run_name == meta["id"]
    assert remote.data.params == {"optim.lr": "0.1", "epochs": "3", "seed": str(meta["seed"])}
    history = client.get_metric_history(state["ref"], "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(20)]
    tags = remote.data.tags
    assert tags["replicator.run_id"] == meta["id"]
    assert tags["replicator.commit"] == meta["code"]["commit"] == git(repo, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.commit"] == meta["code"]["commit"]
    assert tags["replicator.snapshot_ref"] == meta["code"]["snapshot_ref"]
    assert tags["replicator.config_hash"] == meta["config_hash"]
    assert tags["replicator.seed"] == str(meta["seed"])
    assert tags["replicator.status"] == "completed"
    files = {f.path for f in client.list_artifacts(state["ref"], "replicator")}
    assert files == {"replicator/run.json", "replicator/summary.json"}
    summary = json.loads(
        Path(
            client.download_artifacts(state["ref"], "replicator/summary.json", str(repo))
        ).read_text()
    )
    assert summary["best"] == 0.05


# MLflow's sqlite store uses a loader strategy SQLAlchemy 2.1 deprecates (in the test's client)
NOLOAD = "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"


@pytest.mark.filterwarnings(NOLOAD)
def test_run_sends_to_a_local_sqlite_store_from_mlflow_tracking_uri(
    repo: Path, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "train")
    done = run_cli(
        "run", "--mirror", "mlflow", "--", sys.executable, "train.py",
        env={"MLFLOW_TRACKING_URI": uri},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    state = _state(_run_dir(repo))
    assert state["status"] == "ok", (state, done.stderr)
    assert state["options"] == {}  # the URI came from the environment; nothing else recorded
    client = _client(uri)
    assert len(client.get_metric_history(state["ref"], "loss")) == 20
    assert client.get_run(state["ref"]).info.status == "FINISHED"
    # artifacts beside the store, not in the project's working directory
    assert list((tmp_path / "store" / "mlartifacts").rglob("run.json"))
    assert not (repo / "mlruns").exists()


@pytest.mark.filterwarnings(NOLOAD)
def test_server_killed_mid_run_leaves_a_gap_that_mirror_fills(repo: Path, server) -> None:
    """Last in the module: it kills the module's server."""
    url, root, process = server
    _setup(repo, url)
    flag = repo.parent / "go"
    proc = start_cli(
        "run", "--", sys.executable, "train.py", cwd=repo, env={"WAIT_FOR": str(flag)}
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        state: dict = {}
        while time.monotonic() < deadline and state.get("sent_points") != 10:
            runs = repo / ".replicator" / "runs"
            found = list(runs.glob("*/mirrors.json")) if runs.exists() else []
            if found:
                try:
                    state = json.loads(found[0].read_text()).get("mlflow", {})
                except ValueError:
                    pass
            time.sleep(0.1)
        assert state.get("sent_points") == 10, state
        os.killpg(process.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        process.wait(timeout=10)  # type: ignore[attr-defined]
        flag.write_text("go")
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "completed (exit code 0)" in output
    reports = [line for line in output.splitlines() if "mirror mlflow:" in line]
    assert len(reports) == 2, output
    assert "ConnectionError" in reports[0] or "Connection refused" in reports[0], reports[0]
    run_dir = _run_dir(repo)
    state = _state(run_dir)
    assert (state["status"], state["sent_points"], state["closed"]) == ("gap", 10, False)
    assert state["errors"]

    # The server's store is reachable again (here directly, through its sqlite file).
    store = f"sqlite:///{root / 'mlflow.db'}"
    (repo / "replicator.yaml").write_text(f"mirror:\n  mlflow:\n    tracking_uri: {store}\n")
    filled = run_cli("mirror", "last", "--to", "mlflow")
    assert filled.returncode == 0, filled.stderr
    after = _state(run_dir)
    assert (after["status"], after["sent_points"], after["ref"]) == ("ok", 20, state["ref"])
    client = _client(store)
    history = client.get_metric_history(state["ref"], "loss")
    assert sorted(m.step for m in history) == list(range(20))  # one run, no value twice
    assert client.get_run(state["ref"]).info.status == "FINISHED"
