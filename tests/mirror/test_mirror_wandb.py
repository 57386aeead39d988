"""The W&B sink: a real offline-run directory, read back record by record from its ``.wandb``
file with W&B's own protobuf classes (the file ``wandb sync`` uploads)."""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from ..conftest import git, run_cli

pytest.importorskip("wandb")

TRAIN = """\
import replicator
cfg = {"optim": {"lr": 0.1}, "epochs": 3}
with replicator.start(cfg) as run:
    for step in range(15):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 15}, step=step)
    run.summary["best_acc"] = 0.9
"""


def _records(path: Path) -> list[Any]:
    """The records of a W&B run file: a LevelDB log (7-byte header, 32 KiB blocks of chunks
    ``crc32 | length | type | data``) of ``wandb.proto`` Record messages."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(data):
        block_left = 32768 - pos % 32768
        if block_left < 7:
            pos += block_left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        if kind == 0 and length == 0:
            break
        assert zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF == crc
        pending += chunk
        if kind in (1, 4):  # a full record, or the last chunk of one
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
        pos += 7 + length
    return records


def test_offline_run_directory_holds_config_history_summary_and_record(repo: Path) -> None:
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "train")
    done = run_cli("run", "-e", "mlp", "--mirror", "wandb", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    (run_dir,) = (repo / ".replicator" / "runs").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    state = json.loads((run_dir / "mirrors.json").read_text())["wandb"]
    assert (state["status"], state["sent_points"]) == ("ok", 30), (state, done.stderr)
    assert state["ref"] == meta["id"]
    offline = Path(state["where"])
    assert offline.parent == run_dir / "mirror" / "wandb" / "wandb"
    assert offline.name.startswith("offline-run-") and offline.name.endswith(meta["id"])
    records = _records(offline / f"run-{meta['id']}.wandb")
    kinds = [r.WhichOneof("record_type") for r in records]

    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.run_id, run.project, run.display_name) == (meta["id"], "mlp", meta["id"])
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert (config["optim"], config["epochs"]) == ({"lr": 0.1}, 3)
    assert config["seed"] == meta["seed"]
    assert set(run.tags) == {
        f"commit:{meta['code']['commit']}",
        f"snapshot_ref:{meta['code']['snapshot_ref']}"[:64],
        f"config_hash:{meta['config_hash']}"[:64],  # W&B's limit
        f"seed:{meta['seed']}",
    }
    assert f"config_hash={meta['config_hash']}" in run.notes

    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            row = {i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in items}
            rows.append(row)
    assert [(r["_step"], r["loss"], r["acc"]) for r in rows] == [
        (s, 1.0 / (s + 1), s / 15) for s in range(15)
    ]
    summary: dict[str, Any] = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            items = record.summary.update
            summary.update(
                {i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in items}
            )
    assert summary["best_acc"] == 0.9
    assert summary["replicator_status"] == "completed"
    files = [
        f.path for r in records if r.WhichOneof("record_type") == "files" for f in r.files.files
    ]
    assert "replicator/run.json" in files
    assert (
        json.loads((offline / "files" / "replicator" / "run.json").read_text())["id"] == meta["id"]
    )
    (exit_record,) = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    assert exit_record.exit_code == 0
    assert kinds.index("run") < kinds.index("history") < kinds.index("exit")
