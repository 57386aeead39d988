"""The Neptune sink writes a real offline run directory, read back with Neptune's own reader (the
disk queue that ``neptune sync`` replays) and found by the collector behind ``neptune status``."""

from __future__ import annotations

import json
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from replicator.errors import MissingDependencyError, UsageError
from replicator.mirror.base import Point, RunInfo, make_sink

from ..conftest import git, run_cli
from .no_network import network_guard

with warnings.catch_warnings():
    # neptune 1.x imports bravado, which touches jsonschema.RefResolver (deprecated there)
    warnings.filterwarnings("ignore", r"jsonschema\.RefResolver", DeprecationWarning)
    pytest.importorskip("neptune")
    from neptune.cli.collect import collect_containers
    from neptune.core.components.queue.disk_queue import DiskQueue
    from neptune.internal.operation import Operation

CONFIG = {"model": {"width": 64, "layers": [64, 32], "dropout": None}, "optim": {"lr": 0.01}}
TAGS = {
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "snapshot_ref": "refs/replicator/snapshots/r1",
    "config_hash": "c0ffee",
    "seed": "7",
    "status": "running",
}


@pytest.fixture(autouse=True)
def _no_user_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests set Neptune's own variables where they test them, never inherit them."""
    monkeypatch.delenv("NEPTUNE_DATA_DIRECTORY", raising=False)
    monkeypatch.delenv("NEPTUNE_PROJECT", raising=False)


def run_info(tmp_path: Path) -> RunInfo:
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r1", "seed": 7}))
    return RunInfo("r1", "mnist", "wide-net", run_dir, CONFIG, TAGS, 1_700_000_000.0)


def stored_operations(data_directory: Path) -> tuple[Path, list[Any]]:
    """The one offline run under ``data_directory`` and the operations Neptune stored for it."""
    runs = list((data_directory / "offline").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("run__")
    queue = DiskQueue(
        data_path=runs[0],
        to_dict=lambda op: op.to_dict(),
        from_dict=Operation.from_dict,
        lock=threading.RLock(),
    )
    operations: list[Any] = []
    try:
        while batch := queue.get_batch(1000):
            operations.extend(element.obj for element in batch)
    finally:
        queue.close()
    return runs[0], operations


def assigned(operations: list[Any]) -> dict[str, Any]:
    return {
        "/".join(op.path): op.value for op in operations if type(op).__name__.startswith("Assign")
    }


def test_a_run_becomes_an_offline_neptune_run_with_config_metrics_summary_tags_and_run_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEPTUNE_PROJECT", raising=False)
    monkeypatch.delenv("NEPTUNE_DATA_DIRECTORY", raising=False)
    info = run_info(tmp_path)
    sink = make_sink("neptune", {"project": "team/vision"})
    sink.check()
    sink.open(info)
    sink.send_metrics([Point("loss", 1.0 / (s + 1), s, 1_700_000_001.0 + s) for s in range(5)])
    sink.send_metrics([Point("train/acc", 0.5, 4, 1_700_000_010.0)])
    sink.send_summary({"loss": 0.2, "acc": 0.5})
    sink.send_artifact(info.run_dir / "run.json", "run.json")
    (info.run_dir / "run.json").write_text("{}")  # what was sent is the content at that moment
    sink.close("completed")

    data_directory = info.run_dir / "mirror" / "neptune"
    assert sink.where() == str(data_directory)
    run_directory, operations = stored_operations(data_directory)
    values = assigned(operations)
    assert values["sys/name"] == "wide-net"
    assert values["parameters/model/width"] == 64
    assert values["parameters/model/layers"] == "[64, 32]"
    assert values["parameters/model/dropout"] == "None"
    assert values["parameters/optim/lr"] == 0.01
    assert values["summary/loss"] == 0.2 and values["summary/acc"] == 0.5
    assert values["replicator/run_id"] == "r1" and values["replicator/experiment"] == "mnist"
    assert values["replicator/tags/commit"] == TAGS["commit"]
    assert values["replicator/tags/seed"] == "7"
    assert values["replicator/status"] == "completed"
    assert values["sys/failed"] is False
    tags = [v for op in operations if type(op).__name__ == "AddStrings" for v in op.values]
    assert set(tags) == {
        f"commit:{TAGS['commit']}",
        "snapshot_ref:refs/replicator/snapshots/r1",
        "config_hash:c0ffee",
        "seed:7",
    }
    series: dict[str, list[tuple[int | None, float, float]]] = {}
    for op in operations:
        if type(op).__name__ == "LogFloats":
            series.setdefault("/".join(op.path), []).extend(
                (v.step, v.value, v.ts) for v in op.values
            )
    assert series == {
        "metrics/loss": [(s, 1.0 / (s + 1), 1_700_000_001.0 + s) for s in range(5)],
        "metrics/train/acc": [(4, 0.5, 1_700_000_010.0)],
    }
    (upload,) = [op for op in operations if type(op).__name__ == "UploadFile"]
    assert upload.path == ["replicator", "files", "run.json"]
    stored = run_directory / "upload_path" / upload.tmp_file_name
    assert json.loads(stored.read_text()) == {"run_id": "r1", "seed": 7}

    # what `neptune status` / `neptune sync --path` find there
    collected = collect_containers(path=data_directory, backend=None)  # type: ignore[arg-type]
    assert len(collected.offline_containers) == 1


def test_a_failed_run_is_marked_failed_and_the_data_directory_option_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEPTUNE_PROJECT", "team/from-env")
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(tmp_path / "elsewhere"))
    info = run_info(tmp_path)
    sink = make_sink("neptune", {"data_directory": str(tmp_path / "neptune-data")})
    sink.check()
    sink.open(info)
    sink.send_metrics(
        [
            Point("loss", 0.5, None, 1_700_000_001.0),
            Point("loss", 0.25, 1, 1_700_000_002.0, rank=1),
            Point("loss", float("nan"), 2, 1_700_000_003.0),  # Neptune cannot store it
        ]
    )
    sink.send_resume(0)
    sink.close("failed")
    _, operations = stored_operations(tmp_path / "neptune-data")
    values = assigned(operations)
    assert values["replicator/status"] == "failed" and values["sys/failed"] is True
    assert values["replicator/resumed_from_step"] == 0
    logged = [
        ("/".join(op.path), v.step, v.value)
        for op in operations
        if type(op).__name__ == "LogFloats"
        for v in op.values
    ]
    assert logged == [("metrics/loss", None, 0.5), ("metrics/rank1/loss", 1, 0.25)]
    # the option wins over Neptune's variable, which is left as the user set it
    assert os.environ["NEPTUNE_DATA_DIRECTORY"] == str(tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_neptune_data_directory_is_used_without_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEPTUNE_DATA_DIRECTORY", str(tmp_path / "users-neptune"))
    info = run_info(tmp_path)
    sink = make_sink("neptune", {})
    sink.open(info)
    sink.send_metrics([Point("loss", 0.5, 0, 1_700_000_001.0)])
    sink.close("completed")
    assert sink.where() == str(tmp_path / "users-neptune")
    _, operations = stored_operations(tmp_path / "users-neptune")
    assert [op.values[0].value for op in operations if type(op).__name__ == "LogFloats"] == [0.5]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"api_token": "abc"}, r"'api_token' looks like a credential.*NEPTUNE_API_TOKEN"),
        ({"project": "no-slash"}, r"option 'project' must be WORKSPACE/PROJECT, got 'no-slash'"),
        ({"data_dir": "x"}, r"no option 'data_dir'. Known options: project, data_directory"),
    ],
)
def test_bad_options_are_refused_by_check(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make_sink("neptune", options).check()


def test_a_bad_neptune_project_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEPTUNE_PROJECT", "just-a-name")
    with pytest.raises(UsageError, match=r"NEPTUNE_PROJECT must be WORKSPACE/PROJECT"):
        make_sink("neptune", {}).check()


def test_a_missing_neptune_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "neptune", None)  # import neptune now fails as if absent
    with pytest.raises(MissingDependencyError, match=r"pip install 'replicator\[neptune\]'"):
        make_sink("neptune", {}).check()


TRAIN = """\
import replicator
cfg = {"optim": {"lr": 0.1}, "epochs": 3}
with replicator.start(cfg) as run:
    for step in range(25):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 25}, step=step)
    run.summary["best_acc"] = 0.96
"""


def test_replicator_run_mirror_neptune_writes_the_offline_run(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEPTUNE_DATA_DIRECTORY", raising=False)
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add train.py")
    guard, attempts = network_guard(tmp_path)
    done = run_cli(
        "run", "--mirror", "neptune", "--", sys.executable, "train.py", env=guard, timeout=300
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert attempts.read_text() == ""  # offline: no connection, not even a name lookup
    assert "[neptune]" not in done.stdout + done.stderr  # the tool's console lines stay quiet
    (run_dir,) = (repo / ".replicator" / "runs").iterdir()
    state = json.loads((run_dir / "mirrors.json").read_text())["neptune"]
    assert state["status"] == "ok" and state["sent_points"] == 50
    assert state["where"] == str(run_dir / "mirror" / "neptune")

    run_directory, operations = stored_operations(Path(state["where"]))
    values = assigned(operations)
    record = json.loads((run_dir / "run.json").read_text())
    assert values["replicator/run_id"] == run_dir.name
    assert values["replicator/tags/commit"] == git(repo, "rev-parse", "HEAD")
    assert values["replicator/tags/seed"] == str(record["seed"])
    assert values["parameters/optim/lr"] == 0.1 and values["parameters/epochs"] == 3
    assert values["summary/best_acc"] == 0.96 and values["replicator/status"] == "completed"
    loss = [
        (v.step, v.value)
        for op in operations
        if type(op).__name__ == "LogFloats" and op.path == ["metrics", "loss"]
        for v in op.values
    ]
    assert loss == [(step, 1.0 / (step + 1)) for step in range(25)]
    (upload,) = [op for op in operations if type(op).__name__ == "UploadFile"]
    sent = json.loads((run_directory / "upload_path" / upload.tmp_file_name).read_text())
    assert sent["id"] == run_dir.name
