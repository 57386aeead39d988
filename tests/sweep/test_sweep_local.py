"""The local executor: a grid of real `replicator run` jobs, N at once, each its own run."""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

from ..conftest import run_cli, start_cli
from .core_helpers import make_project, runs, status, sweep_records


def test_grid_times_seeds_runs_every_job_once_concurrently_and_apart(repo: Path) -> None:
    store = make_project(repo, "x: 0.0\nmodel: small\nsleep: 0.6\n")
    env = {
        # the sweep itself runs inside a `replicator run`: no job may join that run
        "REPLICATOR_RUN_DIR": str(repo / "not-a-job-run"),
        "SWEEP_TEST_LEAK": "",
    }
    result = run_cli(
        "sweep", "-c", "cfg.yaml", "--set", "x=0.5,2", "model=small,big",
        "--seeds", "2", "-j", "2", "--", "python", "train.py",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "8 completed" in result.stderr

    found = runs(store)
    assert len(found) == 8
    assert len({r["dir"] for r in found}) == 8
    assert all(r["status"] == "completed" for r in found)
    (record,) = sweep_records(store)
    assert record["experiment"] == "cfg" and len(record["jobs"]) == 8
    seeds = set(record["seeds"])
    assert len(seeds) == 2
    by_index = {r["seeding"]["index"]: r for r in found}
    assert sorted(by_index) == list(range(8))
    points = set()
    for job in record["jobs"]:
        run = by_index[job["index"]]
        assert run["seeding"]["sweep"] == record["id"]
        assert run["seed"] == job["seed"] and run["config"]["seed"] == job["seed"]
        wanted = dict(o.split("=", 1) for o in job["overrides"])
        assert float(run["config"]["x"]) == float(wanted["x"])
        assert run["config"]["model"] == wanted["model"]
        points.add((run["config"]["x"], run["config"]["model"], run["seed"]))
    # the product: 2 values x 2 values x 2 seeds, each once
    assert points == {(x, m, s) for x in (0.5, 2.0) for m in ("small", "big") for s in seeds}

    # jobs ran two at a time: some pair of scripts overlapped in time
    spans = sorted((r["summary"]["started"], r["summary"]["ended"]) for r in found)
    assert any(a_end > b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    # and each in its own process, with nothing one job set reaching another
    assert len({r["summary"]["pid"] for r in found}) == 8
    assert {r["summary"]["leak"] for r in found} == {""}


def test_status_shows_the_failed_job_and_resume_runs_only_it(repo: Path, cli) -> None:
    store = make_project(repo, "x: 0.0\nfail_if: null\n")
    (repo / "broken").write_text("")
    result = run_cli(
        "sweep", "-c", "cfg.yaml", "x=1,2", "fail_if=null,broken", "-j", "2",
        "--", "python", "train.py",
    )  # fmt: skip
    assert result.returncode == 1
    assert "job 1 failed (exit code 3)" in result.stderr
    (record,) = sweep_records(store)
    states = status(cli, record["id"])
    assert states == {0: "completed", 1: "failed", 2: "completed", 3: "failed"}
    before = {r["dir"] for r in runs(store)}

    (repo / "broken").unlink()
    result = run_cli("sweep", "resume", record["id"], "-j", "2")
    assert result.returncode == 0, result.stderr
    new = [r for r in runs(store) if r["dir"] not in before]
    assert sorted(r["seeding"]["index"] for r in new) == [1, 3]
    assert all(r["seeding"]["sweep"] == record["id"] for r in new)
    assert set(status(cli, record["id"]).values()) == {"completed"}
    # nothing left to do: a second resume runs nothing
    again = run_cli("sweep", "resume", record["id"])
    assert again.returncode == 0 and "jobs to run again: none" in again.stderr
    assert len(runs(store)) == 6


def test_ctrl_c_stops_every_job_leaves_readable_runs_and_resume_finishes(repo: Path, cli) -> None:
    store = make_project(repo, "x: 0.0\nsleep: 30\n")
    proc = start_cli(
        "sweep", "-c", "cfg.yaml", "x=1,2,3", "-j", "2", "--", "python", "train.py", cwd=repo
    )
    deadline = time.monotonic() + 60
    while sum("started" in _text(p) for p in (store / "runs").glob("*/stdout.log")) < 2:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the jobs did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    assert "sweep resume" in output
    found = runs(store)
    assert len(found) == 2
    assert {r["status"] for r in found} == {"interrupted"}
    (record,) = sweep_records(store)
    assert record["state"] == "interrupted"
    assert sorted(status(cli, record["id"]).values()) == ["failed", "failed", "missing"]

    (repo / "cfg.yaml").write_text("x: 0.0\nsleep: 0\n")  # the script no longer sleeps
    result = run_cli("sweep", "resume", record["id"], "-j", "3")
    assert result.returncode == 0, result.stderr
    assert set(status(cli, record["id"]).values()) == {"completed"}
    assert len(runs(store)) == 5


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
