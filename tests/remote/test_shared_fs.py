"""A store on a shared filesystem: runs write only their own directories (and their own snapshot
ref), a run of a dead node reads 'crashed' by its heartbeat's age, and a store read from another
path than the one it was recorded at (another mount point, a moved or copied store) still
resolves the run's recorded paths."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from ..conftest import git, run_cli, start_cli
from .conftest import record_run


def _files(root: Path, *, skip: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and skip not in p.parents
    }


def test_concurrent_runs_write_only_their_run_directory_and_their_own_ref(repo: Path) -> None:
    record_run(repo)
    store = repo / ".replicator"
    before = _files(store, skip=store / "runs")
    (repo / "notes.txt").write_text("uncommitted work, part of every snapshot\n")
    procs = [start_cli("run", "--", "python", "-c", "pass", cwd=repo) for _ in range(4)]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    runs = sorted((store / "runs").iterdir())
    assert len(runs) == 5
    # nothing outside runs/ changed: no index, no lock, no shared file written by a run
    assert _files(store, skip=store / "runs") == before
    assert not (store / "index.sqlite").exists()
    for run_dir in runs[1:]:
        code = json.loads((run_dir / "code.json").read_text())
        assert git(repo, "rev-parse", code["snapshot_ref"]) == code["snapshot"]
        assert git(repo, "show", f"{code['snapshot']}:notes.txt").startswith("uncommitted")
    git(repo, "fsck", "--no-progress")


def _running_elsewhere(store: Path, run_id: str, *, heartbeat_age: float) -> Path:
    """A run.json as a compute node leaves it: 'running', another host, a pid that happens to
    be alive here (this test's own), and a heartbeat of the given age."""
    run_dir = store / "runs" / run_id
    run_dir.mkdir(parents=True)
    meta = {
        "schema_version": 1,
        "id": run_id,
        "experiment": "default",
        "status": "running",
        "started": time.time() - 3600,
        "seed": 1,
        "host": socket.gethostname() + "-node-17",
        "pid": os.getpid(),
        "pid_start": None,
    }
    (run_dir / "run.json").write_text(json.dumps(meta))
    (run_dir / "heartbeat").touch()
    stamp = time.time() - heartbeat_age
    os.utime(run_dir / "heartbeat", (stamp, stamp))
    return run_dir


def test_run_of_another_host_reads_crashed_by_heartbeat_age_only(tmp_path: Path) -> None:
    store = tmp_path / ".replicator"
    _running_elsewhere(store, "20261129-100000-0001", heartbeat_age=5)
    _running_elsewhere(store, "20261129-100000-0002", heartbeat_age=600)
    env = {"REPLICATOR_STORE": str(store)}
    listed = run_cli("ls", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout)] == ["running", "crashed"]
    patient = run_cli(
        "ls", "--json", cwd=tmp_path, env={**env, "REPLICATOR_HEARTBEAT_STALE_S": "900"}
    )
    assert [r["status"] for r in json.loads(patient.stdout)] == ["running", "running"]


def test_moved_store_is_read_and_reproduced_from_its_new_place(repo: Path, tmp_path: Path) -> None:
    run_id = record_run(repo)
    moved = tmp_path / "elsewhere" / "mounted-project"
    moved.parent.mkdir()
    shutil.move(str(repo), str(moved))
    os.chdir(moved)

    listed = run_cli("ls", "--json", cwd=moved)
    assert [(r["id"], r["status"]) for r in json.loads(listed.stdout)] == [(run_id, "completed")]
    shown = run_cli("show", run_id, cwd=moved)
    assert shown.returncode == 0, shown.stderr
    assert f"working directory:     {moved}" in shown.stdout
    assert f"repository:            {moved}" in shown.stdout
    verify = run_cli("checkpoint", "verify", run_id, cwd=moved)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    reproduced = run_cli("reproduce", run_id, "--env", "current", cwd=moved, timeout=300)
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
    assert "output model.txt" in reproduced.stdout and "Verdict: REPRODUCED" in reproduced.stdout
