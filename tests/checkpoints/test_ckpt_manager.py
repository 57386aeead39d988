"""CheckpointManager: retention, manifest, integrity checks, safe formats, async saves, CLI."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from replicator.checkpoints import (
    CheckpointFallbackWarning,
    CheckpointHashError,
    CheckpointManager,
    describe_checkpoints,
    read_checkpoint,
)
from replicator.cli.main import cli
from replicator.errors import CheckpointError, UsageError


def _files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.name.endswith(".safetensors")}


def _expected(history: list[tuple[int, float | None]], keep_last: int, keep_best: int, mode: str):
    """The promised files, computed independently: latest, the last k, the best k.

    Ties: the earlier save ranks first. NaN and missing values are never best.
    """
    names = [f"step{step:09d}-{i + 1:06d}.safetensors" for i, (step, _) in enumerate(history)]
    keep = set(names[-keep_last:])
    ranked = [
        (value if mode == "min" else -value, i)
        for i, (_, value) in enumerate(history)
        if value is not None and not math.isnan(value)
    ]
    best = [names[i] for _, i in sorted(ranked)[:keep_best]]
    return keep | set(best), best


@pytest.mark.parametrize("mode", ["max", "min"])
def test_retention_keeps_exactly_the_promised_files_with_ties_and_nan(tmp_path, mode):
    values = [0.5, 0.5, math.nan, 0.7, None, 0.7, math.inf, -math.inf, 0.1, math.nan, 0.5]
    manager = CheckpointManager(tmp_path, monitor="acc", mode=mode, keep_best=3, keep_last=2)
    history: list[tuple[int, float | None]] = []
    state = {"w": np.arange(3.0)}
    for step in range(1, 61):
        value = values[(step * 7) % len(values)]
        metrics = {} if value is None else {"acc": value, "loss": 1.0 / step}
        info = manager.save(state, step=step, metrics=metrics)
        history.append((step, value))
        keep, best = _expected(history, 2, 3, mode)
        assert _files(tmp_path) == keep, f"after step {step}"
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        assert {e["file"] for e in manifest["checkpoints"]} == keep
        assert manifest["latest"] == info.file
        assert manifest["best"] == best
        assert [b.file for b in manager.best] == best
    assert manager.latest.step == 60
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_tie_keeps_the_earlier_checkpoint_and_nan_is_never_best(tmp_path):
    manager = CheckpointManager(tmp_path, monitor="acc", keep_best=1, keep_last=1)
    manager.save({}, step=1, metrics={"acc": 0.9})
    manager.save({}, step=2, metrics={"acc": 0.9})
    manager.save({}, step=3, metrics={"acc": math.nan})
    assert [b.step for b in manager.best] == [1]
    assert manager.latest.step == 3  # latest is kept even though its metric is NaN
    assert manager.latest.metrics["acc"] != manager.latest.metrics["acc"]
    assert sorted(c.step for c in manager.checkpoints()) == [1, 3]


def test_manifest_records_what_resume_needs(tmp_path):
    manager = CheckpointManager(tmp_path, config_hash="abc123")
    info = manager.save({"x": np.ones(4, dtype=np.float32)}, step=5, epoch=2, metrics={"l": 1})
    entry = json.loads((tmp_path / "manifest.json").read_text())["checkpoints"][0]
    assert entry["step"] == 5 and entry["epoch"] == 2 and entry["metrics"] == {"l": 1}
    assert entry["config_hash"] == "abc123" and entry["size"] == info.path.stat().st_size
    assert entry["hash"].startswith("blake3:") and entry["time"] > 0
    # Resume reads the manifest, never file times: make the older file look newest.
    later = manager.save({"x": np.zeros(4, dtype=np.float32)}, step=6)
    manager_keep = CheckpointManager(tmp_path, keep_last=5)
    assert manager_keep.latest.step == 6
    os.utime(later.path, (1, 1))
    assert CheckpointManager(tmp_path).load().step == 6


def test_every_skips_steps_and_force_saves(tmp_path):
    manager = CheckpointManager(tmp_path, every=10, keep_last=None)
    saved = [manager.save({"s": s}, step=s) for s in range(1, 25)]
    assert [i.step for i in saved if i is not None] == [10, 20]
    assert manager.save({"s": 23}, step=23, force=True).step == 23
    assert [c.step for c in manager.checkpoints()] == [10, 20, 23]


def test_state_round_trips_exactly(tmp_path):
    state = {
        "arr": np.arange(6, dtype=np.int16).reshape(2, 3),
        "f32": np.float32(1.5),
        "big": 2**80,
        "floats": [0.1, math.inf, -0.0],
        "nan": math.nan,
        "tuple": (1, ("a", None)),
        "bytes": b"\x00\xff",
        3: {"int keys": True},
        ("a", 1): "tuple key",
        "$weird": "dollar key",
        "empty": np.zeros((0, 3), dtype=np.float64),
        "bool": np.array([True, False]),
    }
    CheckpointManager(tmp_path).save(state, step=0)
    got = CheckpointManager(tmp_path).load().state
    assert got.keys() == state.keys()
    assert got["arr"].dtype == np.int16 and (got["arr"] == state["arr"]).all()
    assert isinstance(got["f32"], np.float32) and got["f32"] == 1.5
    assert got["big"] == 2**80 and got["floats"] == [0.1, math.inf, -0.0]
    assert math.copysign(1, got["floats"][2]) == -1 and math.isnan(got["nan"])
    assert got["tuple"] == (1, ("a", None)) and got["bytes"] == b"\x00\xff"
    assert got[3] == {"int keys": True} and got[("a", 1)] == "tuple key"
    assert got["$weird"] == "dollar key" and got["empty"].shape == (0, 3)
    assert got["bool"].dtype == bool


def test_torch_state_is_a_standard_safetensors_file(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors = pytest.importorskip("safetensors")
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    extra = {"bf16": torch.ones(2, dtype=torch.bfloat16), "view": torch.arange(10)[::3]}
    info = CheckpointManager(tmp_path).save(
        {"model": model.state_dict(), "optim": opt.state_dict(), **extra}, step=1
    )
    with safetensors.safe_open(str(info.path), framework="pt") as f:
        assert torch.equal(f.get_tensor("state.model.weight"), model.weight.detach())
        assert torch.equal(f.get_tensor("state.view"), torch.tensor([0, 3, 6, 9]))
        assert "rng.torch.cpu" in set(f.keys())
    got = CheckpointManager(tmp_path).load().state
    for key, value in opt.state_dict()["state"][0].items():
        assert torch.equal(got["optim"]["state"][0][key], value)
    assert got["optim"]["param_groups"] == opt.state_dict()["param_groups"]
    opt.load_state_dict(got["optim"])
    assert got["bf16"].dtype == torch.bfloat16


def test_unsupported_object_is_refused_with_its_key(tmp_path):
    class Thing:
        pass

    manager = CheckpointManager(tmp_path)
    with pytest.raises(
        CheckpointError, match=r"state\['extra'\]\['obj'\] is a .*Thing.*state_dict"
    ):
        manager.save({"extra": {"obj": Thing()}}, step=1)
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_damaged_checkpoint_is_detected_and_resume_falls_back(tmp_path, damage):
    manager = CheckpointManager(tmp_path, keep_last=3)
    for step in (1, 2, 3):
        manager.save({"w": np.full(1000, step, dtype=np.float64)}, step=step)
    latest = manager.latest.path
    data = bytearray(latest.read_bytes())
    if damage == "truncate":
        latest.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[-100] ^= 0x01  # one bit inside the tensor data
        latest.write_bytes(bytes(data))
    fresh = CheckpointManager(tmp_path, keep_last=3)
    with pytest.warns(CheckpointFallbackWarning, match=r"failed its check .* loaded .*step 2"):
        got = fresh.load()
    assert got.step == 2 and (got.state["w"] == 2).all() and got.fallback_from == latest.name
    with pytest.raises(
        CheckpointHashError, match=r"does not match its manifest.*truncated or altered"
    ):
        fresh.load(3)
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert {"invalid", "fallback"} <= {e["event"] for e in events}
    report = fresh.verify()
    assert not report.ok
    assert [r["status"] for r in report.results] == ["ok", "ok", "mismatch"]


def test_no_valid_checkpoint_raises(tmp_path):
    manager = CheckpointManager(tmp_path)
    assert manager.load() is None
    manager.save({"a": 1}, step=1)
    manager.latest.path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"No valid checkpoint.*every candidate failed"):
        CheckpointManager(tmp_path).load()


class _Planted:
    """Unpickling this creates a marker file: it proves that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_planted_pickle_never_runs_on_load(tmp_path, caplog):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Planted(str(marker)))
    directory = tmp_path / "ckpt"
    manager = CheckpointManager(directory, keep_last=2)
    manager.save({"a": 1}, step=1)
    manager.save({"a": 2}, step=2)
    # The attacker replaces the latest file and even fixes the manifest's hash.
    latest = manager.latest.path
    latest.write_bytes(payload)
    from replicator.checkpoints.file import hash_checkpoint

    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["checkpoints"][-1]["hash"] = hash_checkpoint(latest)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    fresh = CheckpointManager(directory, keep_last=2)
    with pytest.raises(CheckpointError, match=r"looks like a Python pickle.*trust_pickle=True"):
        fresh.load(2)
    with pytest.warns(CheckpointFallbackWarning):
        assert fresh.load().state == {"a": 1}
    with pytest.raises(CheckpointError, match="not a replicator checkpoint"):
        read_checkpoint(latest)
    assert not marker.exists()
    # The explicit opt-in does unpickle, and says so in the log.
    with caplog.at_level(logging.WARNING, logger="replicator.checkpoints"):
        read_checkpoint(latest, trust_pickle=True)
    assert marker.exists()
    assert "trust_pickle=True" in caplog.text


def test_torch_save_file_needs_the_opt_in(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match=r"torch.save zip archive"):
        read_checkpoint(path)
    got = read_checkpoint(path, trust_pickle=True)
    assert torch.equal(got.state["w"], torch.ones(2))


def test_load_after_resume_supersedes_the_dead_timeline(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=None)
    for step in range(1, 11):
        manager.save({"step": step}, step=step)
    resumed = CheckpointManager(tmp_path, keep_last=None)
    assert resumed.load(4).state == {"step": 4}
    resumed.save({"step": 5, "again": True}, step=5)
    assert [c.step for c in resumed.checkpoints()] == [1, 2, 3, 4, 5]
    assert resumed.load().state == {"step": 5, "again": True}
    assert len(_files(tmp_path)) == 5
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "superseded" and len(events[-1]["files"]) == 6


def test_leftovers_of_a_killed_write_are_ignored_then_removed(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.save({"a": 1}, step=1)
    (tmp_path / ".step000000002-000002.safetensors.tmp").write_bytes(b"half")
    (tmp_path / "step000000002-000002.safetensors").write_bytes(b"uncommitted")
    fresh = CheckpointManager(tmp_path)
    assert fresh.load().step == 1
    assert fresh.verify().orphans == ("step000000002-000002.safetensors",)
    fresh.save({"a": 3}, step=3)
    assert _files(tmp_path) == {fresh.latest.file}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_usage_errors_say_what_to_do(tmp_path):
    with pytest.raises(UsageError, match=r"keep_best=2 needs a metric.*monitor="):
        CheckpointManager(tmp_path, keep_best=2)
    with pytest.raises(UsageError, match="mode must be 'max' or 'min'"):
        CheckpointManager(tmp_path, monitor="a", mode="up")
    with pytest.raises(UsageError, match="keep_last must be at least 1"):
        CheckpointManager(tmp_path, keep_last=0)
    manager = CheckpointManager(tmp_path)
    with pytest.raises(UsageError, match=r"load\('best'\) needs the metric"):
        manager.load("best")
    manager.save({}, step=3)
    with pytest.raises(CheckpointError, match=r"No checkpoint of step 7 .*kept steps: 3"):
        manager.load(7)
    with pytest.raises(UsageError, match=r"step and epoch must be non-negative integers"):
        manager.save({}, step=1.5)  # type: ignore[arg-type]
    assert manager.save({}, step=np.int64(4), epoch=np.int32(1)).step == 4
    with pytest.raises(UsageError, match="state must be a dict"):
        manager.save([1, 2], step=4)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="No checkpoint manifest"):
        CheckpointManager.open(tmp_path / "nothing")


def test_async_save_returns_before_writing_and_waits_at_close(tmp_path):
    manager = CheckpointManager(tmp_path, async_save=True, keep_last=2)
    state = {"w": np.zeros(2_000_000)}
    assert manager.save(state, step=1) is None
    state["w"][:] = 7  # changed after save(): the checkpoint holds the copy made at save()
    manager.save(state, step=2)
    manager.close()
    assert (manager.load(1).state["w"] == 0).all()
    assert (manager.load(2).state["w"] == 7).all()
    assert [c.step for c in manager.checkpoints()] == [1, 2]


def test_async_save_error_is_raised_by_wait(tmp_path):
    target = tmp_path / "ckpt"
    manager = CheckpointManager(target, async_save=True)
    target.write_text("a file where the directory should be")
    manager.save({"a": 1}, step=1)
    with pytest.raises(CheckpointError, match="asynchronous checkpoint save failed"):
        manager.wait()


KILLED_WRITER = """
import sys, time, numpy as np
from replicator.checkpoints import CheckpointManager
m = CheckpointManager(sys.argv[1], async_save=True)
m.save({"w": np.full(10, 1.0)}, step=1)
m.wait()
m.save({"w": np.ones(60_000_000)}, step=2)   # 480 MB: the test kills us while this is written
print("saving", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_kill_during_async_write_leaves_previous_checkpoint(tmp_path):
    directory = tmp_path / "ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "saving\n"
    deadline = time.monotonic() + 60
    while not list(directory.glob(".step000000002-*.tmp")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    manager = CheckpointManager(directory)
    got = manager.load()
    assert got.step == 1 and (got.state["w"] == 1.0).all()
    assert manager.verify().ok
    manager.save({"w": np.zeros(1)}, step=2)
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_describe_and_cli(tmp_path):
    run_dir = tmp_path / "run"
    manager = CheckpointManager(run_dir / "checkpoints", monitor="acc", keep_best=2)
    for step, acc in [(1, 0.2), (2, 0.9), (3, 0.5), (4, 0.1)]:
        manager.save({"s": step}, step=step, metrics={"acc": acc})
    rows = describe_checkpoints(run_dir)
    assert [(r["step"], r["roles"]) for r in rows] == [
        (2, ["best1"]),
        (3, ["best2"]),
        (4, ["latest"]),
    ]
    assert rows[0]["monitor"] == "acc" and rows[0]["monitor_value"] == 0.9
    assert describe_checkpoints(tmp_path / "none") == []

    runner = CliRunner()
    result = runner.invoke(cli, ["checkpoint", "verify", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "3 of 3 checkpoint(s) match the manifest." in result.output
    result = runner.invoke(cli, ["checkpoint", "ls", str(run_dir)])
    assert result.exit_code == 0
    assert "best1" in result.output and "acc=0.9" in result.output
    result = runner.invoke(cli, ["checkpoint", "ls", str(run_dir), "--json"])
    assert json.loads(result.output)[2]["roles"] == ["latest"]

    path = manager.latest.path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    result = runner.invoke(cli, ["checkpoint", "verify", str(run_dir), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False and report["checkpoints"][2]["status"] == "mismatch"
    result = runner.invoke(cli, ["checkpoint", "verify", str(run_dir)])
    assert result.exit_code == 1 and "mismatch" in result.output
    assert "2 of 3" in result.output


def test_cli_verify_finds_a_run_in_the_store(tmp_path, monkeypatch):
    store = tmp_path / "store"
    run_dir = store / "runs" / "20261126-101010-abcd"
    CheckpointManager(run_dir / "checkpoints").save({"a": 1}, step=1)
    (run_dir / "run.json").write_text(
        json.dumps({"id": run_dir.name, "status": "completed", "experiment": "x", "seed": 1})
    )
    monkeypatch.setenv("REPLICATOR_STORE", str(store))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["checkpoint", "verify", "20261126-101010"])
    assert result.exit_code == 0, result.output
    assert "1 of 1" in result.output
