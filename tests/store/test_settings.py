"""replicator.yaml beside ``store:``: ``heartbeat_stale_s`` and ``snapshot_max_size``, their
order (command-line option > environment variable > replicator.yaml > default) and the errors
that name the file, the line and the key."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from replicator.store import Store

from ..conftest import git, run_cli


def _runs(repo: Path) -> list[Path]:
    return sorted((repo / ".replicator" / "runs").iterdir())


def test_snapshot_max_size_in_replicator_yaml_and_the_option_before_it(repo: Path) -> None:
    (repo / "train.py").write_text("print('ok')\n")
    (repo / "model.ckpt").write_bytes(b"\0" * (6 * 1024 * 1024))  # over the 5 MiB default
    (repo / "replicator.yaml").write_text("# project settings\nsnapshot_max_size: 10MiB\n")

    proc = run_cli("run", "--", "python", "train.py", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "model.ckpt" not in proc.stderr
    (first,) = _runs(repo)
    tree = git(repo, "ls-tree", "-r", "--name-only", f"refs/replicator/snapshots/{first.name}")
    assert "model.ckpt" in tree.split("\n")

    proc = run_cli("run", "--snapshot-max-size", "2MiB", "--", "python", "train.py", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "model.ckpt is larger than the snapshot limit (6.0 MiB > 2.0 MiB)" in proc.stderr
    second = _runs(repo)[-1]
    left_out = json.loads((second / "code.json").read_text())["left_out"]
    assert {"path": "model.ckpt", "reason": "size"}.items() <= left_out[0].items()


@pytest.mark.parametrize(
    ("text", "command", "message"),
    [
        (
            "heartbeat_stale_s: soon\n",
            ("ls",),
            "Setting 'heartbeat_stale_s' in {file}:1 must be a positive number of seconds, "
            "got 'soon'.",
        ),
        (
            "store: .replicator\nheartbeat_stale_s: -5\n",
            ("ls",),
            "Setting 'heartbeat_stale_s' in {file}:2 must be a positive number of seconds, got -5.",
        ),
        (
            "snapshot_max_size: lots\n",
            ("run", "--", "python", "-c", "pass"),
            "Setting 'snapshot_max_size' in {file}:1: 'lots' is not a size such as 5MiB, 200k "
            "or 1000000. Use 0 for no limit.",
        ),
        (
            "snapshot_max_size: -1\n",
            ("run", "--", "python", "-c", "pass"),
            "Setting 'snapshot_max_size' in {file}:1: -1 is not a size",
        ),
        ("store: 5\n", ("ls",), "Setting 'store' in {file}:1 must be a directory path, got 5."),
    ],
)
def test_bad_setting_names_file_line_and_key(
    repo: Path, text: str, command: tuple[str, ...], message: str
) -> None:
    settings = repo / "replicator.yaml"
    settings.write_text(text)
    proc = run_cli(*command, cwd=repo)
    assert proc.returncode == 2, proc.stderr
    assert message.format(file=settings) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (repo / ".replicator" / "runs").exists()  # refused before any run started


def test_heartbeat_stale_s_order(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Store.open().heartbeat_stale_s == 120.0
    (repo / "replicator.yaml").write_text("heartbeat_stale_s: 45\n")
    assert Store.open().heartbeat_stale_s == 45.0
    assert Store(repo / ".replicator").heartbeat_stale_s == 45.0  # a store given by its path
    monkeypatch.setenv("REPLICATOR_HEARTBEAT_STALE_S", "60")
    assert Store.open().heartbeat_stale_s == 60.0


def test_heartbeat_stale_s_in_replicator_yaml_turns_a_quiet_run_crashed(repo: Path) -> None:
    """A run recorded on another host whose heartbeat is 30 s old."""
    (repo / "train.py").write_text("print('ok')\n")
    assert run_cli("run", "--", "python", "train.py", cwd=repo).returncode == 0
    (run,) = _runs(repo)
    meta = json.loads((run / "run.json").read_text())
    meta.update(status="running", ended=None, host="node-17", pid=4242)
    (run / "run.json").write_text(json.dumps(meta))
    quiet = time.time() - 30
    os.utime(run / "heartbeat", (quiet, quiet))

    def status(**env: str) -> str:
        proc = run_cli("ls", "--json", cwd=repo, env=env)
        assert proc.returncode == 0, proc.stderr
        return str(json.loads(proc.stdout)[0]["status"])

    assert status() == "running"
    (repo / "replicator.yaml").write_text("heartbeat_stale_s: 20\n")
    assert status(REPLICATOR_HEARTBEAT_STALE_S="60") == "running"
    assert status() == "crashed"
