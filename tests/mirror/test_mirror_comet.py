"""The Comet sink writes a real offline archive (comet_ml.OfflineExperiment), read back here."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from replicator.errors import MissingDependencyError, UsageError
from replicator.mirror.base import Point, RunInfo, make_sink

from ..conftest import git, run_cli
from .no_network import network_guard

pytest.importorskip("comet_ml")

CONFIG = {"model": {"width": 64, "act": "relu"}, "optim": {"lr": 0.01}, "epochs": 3}
TAGS = {
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "snapshot_ref": "refs/replicator/snapshots/r1",
    "config_hash": "c0ffee",
    "seed": "7",
    "status": "running",
}


@pytest.fixture(autouse=True)
def _no_user_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests set Comet's own variables where they test them, never inherit them."""
    monkeypatch.delenv("COMET_OFFLINE_DIRECTORY", raising=False)


def run_info(tmp_path: Path) -> RunInfo:
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r1", "seed": 7}))
    return RunInfo(
        run_id="r1",
        experiment="mnist",
        name="wide-net",
        run_dir=run_dir,
        config=CONFIG,
        tags=TAGS,
        started=1_700_000_000.0,
    )


def read_archive(archive: Path) -> tuple[dict[str, Any], list[dict[str, Any]], zipfile.ZipFile]:
    """experiment.json and the messages of a Comet offline archive (one JSON object a line)."""
    bundle = zipfile.ZipFile(archive)
    experiment = json.loads(bundle.read("experiment.json"))
    lines = bundle.read("messages.json").decode().splitlines()
    return experiment, [json.loads(line) for line in lines if line.strip()], bundle


def test_a_run_becomes_an_offline_archive_with_config_metrics_summary_tags_and_run_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMET_OFFLINE_DIRECTORY", raising=False)
    info = run_info(tmp_path)
    sink = make_sink("comet", {"project": "replicator-tests"})
    sink.check()
    sink.open(info)
    sink.send_metrics(
        [Point("loss", 1.0 / (step + 1), step, 1_700_000_001.0 + step) for step in range(5)]
    )
    sink.send_metrics([Point("acc", 0.5, 4, 1_700_000_010.0)])
    sink.send_summary({"loss": 0.2, "acc": 0.5})
    sink.send_artifact(info.run_dir / "run.json", "run.json")
    sink.close("completed")

    archive = Path(sink.where())
    assert archive.parent == info.run_dir / "mirror" / "comet"
    assert archive.suffix == ".zip" and archive.is_file()
    experiment, messages, bundle = read_archive(archive)

    assert experiment["project_name"] == "replicator-tests"
    assert set(experiment["tags"]) == {
        f"commit:{TAGS['commit']}",
        "snapshot_ref:refs/replicator/snapshots/r1",
        "config_hash:c0ffee",
        "seed:7",
    }
    metrics = [
        (
            m["payload"]["metric"]["metricName"],
            m["payload"]["metric"]["step"],
            m["payload"]["metric"]["metricValue"],
        )
        for m in messages
        if m["type"] == "metric_msg" and m["payload"]["metric"]["metricName"] in {"loss", "acc"}
    ]
    assert metrics == [("loss", step, 1.0 / (step + 1)) for step in range(5)] + [("acc", 4, 0.5)]
    params = {
        m["payload"]["param"]["paramName"]: m["payload"]["param"]["paramValue"]
        for m in messages
        if m["type"] == "parameter_msg" and m["payload"]["param"]["source"] == "manual"
    }
    assert params == {"model|width": 64, "model|act": "relu", "optim|lr": 0.01, "epochs": 3}
    others = {
        m["payload"]["key"]: m["payload"]["value"] for m in messages if m["type"] == "log_other"
    }
    assert others["Name"] == "wide-net"
    assert others["run_id"] == "r1" and others["experiment"] == "mnist"
    assert others["commit"] == TAGS["commit"] and others["seed"] == "7"
    assert others["summary_loss"] == 0.2 and others["summary_acc"] == 0.5
    assert others["status"] == "completed"
    uploads = [m["payload"] for m in messages if m["type"] == "file_upload"]
    assert [u["additional_params"]["fileName"] for u in uploads] == ["run.json"]
    assert json.loads(bundle.read(uploads[0]["file_path"])) == {"run_id": "r1", "seed": 7}


def test_the_offline_directory_option_places_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path / "users-comet"))
    info = run_info(tmp_path)
    sink = make_sink("comet", {"offline_directory": str(tmp_path / "comet-archives")})
    sink.check()
    sink.open(info)
    sink.send_metrics(
        [Point("loss", 0.5, None, 1_700_000_001.0), Point("loss", 0.25, 1, 1_700_000_002.0, rank=1)]
    )
    sink.close("failed")
    archive = Path(sink.where())
    assert archive.parent == tmp_path / "comet-archives"
    _, messages, _ = read_archive(archive)
    names = [m["payload"]["metric"]["metricName"] for m in messages if m["type"] == "metric_msg"]
    assert "loss" in names and "rank1/loss" in names
    assert not (info.run_dir / "mirror").exists()
    assert not (tmp_path / "users-comet").exists()  # the option wins over Comet's variable


def test_comet_offline_directory_is_used_without_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path / "users-comet"))
    sink = make_sink("comet", {})
    sink.open(run_info(tmp_path))
    sink.close("completed")
    assert Path(sink.where()).parent == tmp_path / "users-comet"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"api_key": "abc"}, r"'api_key' looks like a credential.*COMET_API_KEY"),
        (
            {"projet": "x"},
            r"no option 'projet'. Known options: offline_directory, project, workspace",
        ),
        ({"project": 3}, r"option 'project' must be a non-empty string, got 3"),
        ({"offline_directory": ""}, r"option 'offline_directory' must be a directory path"),
    ],
)
def test_bad_options_are_refused_by_check(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make_sink("comet", options).check()


def test_an_offline_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(UsageError, match=r"which is a file; give a directory"):
        make_sink("comet", {"offline_directory": str(tmp_path / "taken")}).check()


def test_a_missing_comet_ml_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "comet_ml", None)  # import comet_ml now fails as if absent
    with pytest.raises(MissingDependencyError, match=r"pip install 'replicator\[comet\]'"):
        make_sink("comet", {}).check()


def test_a_later_session_continues_the_experiment_in_a_second_archive(tmp_path: Path) -> None:
    info = run_info(tmp_path)
    first = make_sink("comet", {})
    first.open(info)
    first.send_metrics([Point("loss", 1.0, 0, 1.0)])
    first.close("completed")
    key = first.ref()
    assert key is not None and Path(first.where()).name == f"{key}.zip"

    later = make_sink("comet", {})
    later.previous = {"ref": key, "sent_points": 1}  # what the worker reads from mirrors.json
    later.open(info)
    later.send_resume(0)
    later.send_metrics([Point("loss", 0.5, 1, 2.0)])
    later.close("completed")
    archive = Path(later.where())
    assert archive.name.startswith(f"{key}-") and archive.suffix == ".zip"
    experiment, messages, _ = read_archive(archive)
    assert experiment["offline_id"] == key and experiment["resume_strategy"] == "get"
    metrics = [m["payload"]["metric"] for m in messages if m["type"] == "metric_msg"]
    assert [(m["metricName"], m["step"], m["metricValue"]) for m in metrics] == [("loss", 1, 0.5)]
    others = {
        m["payload"]["key"]: m["payload"]["value"] for m in messages if m["type"] == "log_other"
    }
    assert others["resumed_from_step"] == 0


def test_a_previous_session_without_an_archive_starts_a_new_experiment(tmp_path: Path) -> None:
    info = run_info(tmp_path)
    sink = make_sink("comet", {})
    sink.previous = {"ref": "0" * 32, "sent_points": 3}  # that session died before its archive
    sink.open(info)
    sink.close("completed")
    experiment, _, _ = read_archive(Path(sink.where()))
    assert experiment["offline_id"] != "0" * 32 and experiment["resume_strategy"] == "create"


TRAIN = """\
import replicator
cfg = {"optim": {"lr": 0.1}, "epochs": 3}
with replicator.start(cfg) as run:
    for step in range(25):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 25}, step=step)
    run.summary["best_acc"] = 0.96
"""


def test_replicator_run_mirror_comet_writes_the_archive_of_the_run(
    repo: Path, tmp_path: Path
) -> None:
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add train.py")
    guard, attempts = network_guard(tmp_path)
    done = run_cli(
        "run", "--mirror", "comet", "--", sys.executable, "train.py", env=guard, timeout=300
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert attempts.read_text() == ""  # offline: no connection, not even a name lookup
    assert "COMET" not in done.stdout + done.stderr  # the tool's console lines stay quiet
    (run_dir,) = (repo / ".replicator" / "runs").iterdir()
    state = json.loads((run_dir / "mirrors.json").read_text())["comet"]
    assert state["status"] == "ok" and state["sent_points"] == 50
    archive = Path(state["where"])
    assert archive.parent == run_dir / "mirror" / "comet" and archive.name == f"{state['ref']}.zip"

    experiment, messages, bundle = read_archive(archive)
    assert f"commit:{git(repo, 'rev-parse', 'HEAD')}" in experiment["tags"]
    record = json.loads((run_dir / "run.json").read_text())
    assert f"seed:{record['seed']}" in experiment["tags"]
    metrics = [m["payload"]["metric"] for m in messages if m["type"] == "metric_msg"]
    loss = [(m["step"], m["metricValue"]) for m in metrics if m["metricName"] == "loss"]
    assert loss == [(step, 1.0 / (step + 1)) for step in range(25)]
    params = {
        m["payload"]["param"]["paramName"]: m["payload"]["param"]["paramValue"]
        for m in messages
        if m["type"] == "parameter_msg" and m["payload"]["param"]["source"] == "manual"
    }
    assert params["optim|lr"] == 0.1 and params["epochs"] == 3
    others = {
        m["payload"]["key"]: m["payload"]["value"] for m in messages if m["type"] == "log_other"
    }
    assert others["run_id"] == run_dir.name and others["summary_best_acc"] == 0.96
    assert others["status"] == "completed"
    (upload,) = [m["payload"] for m in messages if m["type"] == "file_upload"]
    assert json.loads(bundle.read(upload["file_path"]))["id"] == run_dir.name
