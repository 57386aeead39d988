"""A damaged run never breaks the store (issue 12, items 6 and 8): a wrong-typed field in one
run.json or environment.json, a resume marker with a bad step, bad JSON in the index cache.
The damaged run is named and skipped by listings; ``show`` of it shows what it can."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from replicator.store import Store
from replicator.store.metrics import read_metrics
from replicator.store.store import DamagedRun

from ..conftest import run_cli

SCRIPT = (
    "import replicator\n"
    "with replicator.start() as run:\n"
    "    for step in range(3):\n"
    "        run.log({'loss': 1.0 / (step + 1)}, step=step)\n"
    "    run.summary['acc'] = 0.5\n"
)


def _runs(repo: Path, count: int = 3) -> list[Path]:
    (repo / "train.py").write_text(SCRIPT)
    for _ in range(count):
        proc = run_cli("run", "--", sys.executable, "train.py", cwd=repo)
        assert proc.returncode == 0, proc.stderr
    return sorted((repo / ".replicator" / "runs").iterdir())


def _edit_json(path: Path, **fields: object) -> None:
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_wrong_typed_field_in_one_run_json_skips_that_run_only(repo: Path) -> None:
    runs = _runs(repo)
    assert run_cli("ls", cwd=repo).returncode == 0  # the index caches the good run.json
    _edit_json(runs[0] / "run.json", started="yesterday")

    proc = run_cli("ls", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert runs[0].name not in proc.stdout
    assert runs[1].name in proc.stdout and runs[2].name in proc.stdout
    [warning] = _warnings(proc.stderr)
    assert str(runs[0]) in warning and "'started'" in warning and "yesterday" in warning

    proc = run_cli("ls", "--json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in json.loads(proc.stdout)] == [runs[1].name, runs[2].name]
    assert len(_warnings(proc.stderr)) == 1

    # show of the damaged run shows what it can and names the damaged field
    proc = run_cli("show", runs[0].name, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert f"Run {runs[0].name}" in proc.stdout and "loss" in proc.stdout
    assert "internal error" not in proc.stderr
    [warning] = _warnings(proc.stderr)
    assert str(runs[0]) in warning and "'started'" in warning
    proc = run_cli("show", "--json", runs[0].name, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run"]["damaged"] == [
        "run.json: 'started' must be a number, got 'yesterday'"
    ]

    # the library: the run is skipped and counted, for load_runs and report
    store = Store(repo / ".replicator")
    damaged: list[DamagedRun] = []
    assert [r.id for r in store.select(damaged=damaged)] == [runs[1].name, runs[2].name]
    assert [d.dir for d in damaged] == [runs[0]] and "'started'" in damaged[0].problem
    assert store.damaged == damaged and damaged[0].experiment == "default"
    elsewhere: list[DamagedRun] = []
    assert store.select(experiment="other", damaged=elsewhere) == [] and elsewhere == []
    from replicator import load_runs

    with pytest.warns(RuntimeWarning, match="'started'"):
        assert len(load_runs(store=store)) == 2
    proc = run_cli("report", "default", "--metric", "acc", "--format", "md", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "1 run(s) of 'default' skipped as damaged" in proc.stdout + proc.stderr
    assert "1 damaged run(s) skipped" in proc.stdout


def test_each_wrong_typed_field_is_named(repo: Path) -> None:
    damage = {"seed": "42", "ended": [1], "config": "lr=0.1", "status": 3, "exit_code": True}
    runs = _runs(repo, count=len(damage) + 1)
    for run, (field, value) in zip(runs[1:], damage.items()):
        _edit_json(run / "run.json", **{field: value})
    proc = run_cli("ls", "--json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in json.loads(proc.stdout)] == [runs[0].name]
    warnings = _warnings(proc.stderr)
    assert len(warnings) == len(damage)
    for run, warning, field in zip(runs[1:], warnings, damage):
        assert str(run) in warning and f"'{field}'" in warning
    proc = run_cli("show", runs[3].name, cwd=repo)
    assert proc.returncode == 0 and "'config'" in proc.stderr


def test_wrong_types_in_environment_json_are_named_and_left_out(repo: Path) -> None:
    runs = _runs(repo, count=2)
    _edit_json(runs[0] / "environment.json", packages=5)
    _edit_json(runs[1] / "environment.json", python="3.11", packages={"numpy": "1.26"})
    for run in runs:
        proc = run_cli("show", run.name, cwd=repo)
        assert proc.returncode == 0, proc.stderr
        assert f"Run {run.name}" in proc.stdout
        assert str(run / "environment.json") in proc.stderr
    assert "'packages'" in run_cli("show", runs[0].name, cwd=repo).stderr
    assert "'python'" in run_cli("show", runs[1].name, cwd=repo).stderr
    assert run_cli("show", "--json", runs[0].name, cwd=repo).returncode == 0
    proc = run_cli("ls", cwd=repo)
    assert proc.returncode == 0 and runs[0].name in proc.stdout and runs[1].name in proc.stdout
    proc = run_cli(
        "report", "default", "--metric", "acc", "--format", "html", "-o", "r.html", cwd=repo
    )
    assert proc.returncode == 0, proc.stderr  # the environment table leaves the bad field out
    assert "internal error" not in proc.stderr


def test_resume_marker_with_a_non_integer_step_is_skipped_with_a_warning(repo: Path) -> None:
    [run] = _runs(repo, count=1)
    metrics = run / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write(json.dumps({"event": "resume", "step": "two"}) + "\n")
        f.write(json.dumps({"step": 2, "time": time.time(), "key": "loss", "value": 0.1}) + "\n")
    with pytest.warns(RuntimeWarning, match=r"damaged resume marker \(step 'two'"):
        entries = read_metrics(metrics)
    # nothing superseded by a marker that cannot be read: every logged value is kept
    assert [e["value"] for e in entries if e["key"] == "loss"] == [1.0, 0.5, 1 / 3, 0.1]
    proc = run_cli("show", run.name, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "damaged resume marker" in proc.stderr and "internal error" not in proc.stderr


def test_bad_json_in_the_index_cache_is_rebuilt_by_itself(repo: Path) -> None:
    runs = _runs(repo)
    assert run_cli("ls", cwd=repo).returncode == 0
    index = repo / ".replicator" / "index.sqlite"
    with sqlite3.connect(index) as conn:
        conn.execute("UPDATE runs SET meta = '{bad', summary = '[1' WHERE id = ?", (runs[0].name,))
        conn.execute("UPDATE runs SET meta = '5' WHERE id = ?", (runs[1].name,))
    conn.close()

    proc = run_cli("ls", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert all(r.name in proc.stdout for r in runs) and proc.stderr == ""
    with sqlite3.connect(index) as conn:
        rows = dict(conn.execute("SELECT id, meta FROM runs").fetchall())
    conn.close()
    assert json.loads(rows[runs[0].name])["id"] == runs[0].name  # the row was rewritten
    assert json.loads(rows[runs[1].name])["id"] == runs[1].name

    with sqlite3.connect(index) as conn:
        conn.execute("UPDATE runs SET summary = 'nope' WHERE id = ?", (runs[2].name,))
    conn.close()
    from replicator import load_runs

    assert len(load_runs(store=repo / ".replicator")) == 3
    with sqlite3.connect(index) as conn:
        conn.execute("UPDATE runs SET meta = '{' WHERE id = ?", (runs[2].name,))
    conn.close()
    proc = run_cli("report", "default", "--metric", "acc", "-o", "report.html", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "internal error" not in proc.stderr


def test_a_damaged_index_file_is_rebuilt(repo: Path) -> None:
    runs = _runs(repo, count=2)
    index = repo / ".replicator" / "index.sqlite"
    index.write_bytes(b"this is not a sqlite database" * 100)
    proc = run_cli("ls", "--json", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in json.loads(proc.stdout)] == [r.name for r in runs]
    with sqlite3.connect(index) as conn:  # a working index again
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    conn.close()


def test_heartbeat_stale_threshold_is_a_setting(repo: Path) -> None:
    """A run recorded on another host is 'running' while its heartbeat is fresher than
    REPLICATOR_HEARTBEAT_STALE_S (default 120 s), else 'crashed'."""
    [run] = _runs(repo, count=1)
    _edit_json(run / "run.json", status="running", ended=None, host="another-host", pid=1)
    old = time.time() - 30
    os.utime(run / "heartbeat", (old, old))

    def status(**env: str) -> str:
        proc = run_cli("ls", "--json", cwd=repo, env=env)
        assert proc.returncode == 0, proc.stderr
        [record] = json.loads(proc.stdout)
        return str(record["status"])

    assert status() == "running"  # 30 s old is fresh under the default 120 s
    assert status(REPLICATOR_HEARTBEAT_STALE_S="20") == "crashed"
    assert status(REPLICATOR_HEARTBEAT_STALE_S="60") == "running"
    proc = run_cli("ls", cwd=repo, env={"REPLICATOR_HEARTBEAT_STALE_S": "soon"})
    assert proc.returncode == 2
    assert "$REPLICATOR_HEARTBEAT_STALE_S must be a positive number of seconds" in proc.stderr
