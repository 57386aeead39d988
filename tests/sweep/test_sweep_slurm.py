"""The Slurm executor against a real one-node Slurm cluster started on this machine
(tests/sweep/slurm_cluster.py), and the same tasks through submitit's LocalExecutor."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import run_cli, start_cli
from .cluster_helpers import make_project, read_runs, starts, wait_for_checkpoint
from .slurm_cluster import (
    SlurmCluster,
    slurm_cluster_fixture,  # noqa: F401 - the fixture `slurm_cluster`
)

pytest.importorskip("submitit")

CONFIG = "lr: 0.1\nsteps: 3\nstep_sleep: 0\n"


def test_a_grid_runs_as_a_slurm_job_array_each_job_its_own_run(
    repo: Path, slurm_cluster: SlurmCluster
) -> None:
    store = make_project(repo, CONFIG)
    result = run_cli(
        "sweep", "-c", "cfg.yaml", "--executor", "slurm", "--partition", "debug",
        "--time", "5", "--mem", "0.25", "--set", "lr=0.1,0.01", "--", "python", "train.py",
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 completed" in result.stderr

    runs = read_runs(store)
    assert len(runs) == 2 and all(r["status"] == "completed" for r in runs)
    (record_path,) = store.glob("experiments/cfg/sweeps/*.json")
    sweep_id = record_path.stem
    assert sorted(r["seeding"]["index"] for r in runs) == [0, 1]
    assert {r["seeding"]["sweep"] for r in runs} == {sweep_id}
    assert sorted(float(r["config"]["lr"]) for r in runs) == [0.01, 0.1]
    # each ran as a task of one Slurm job array, its logs beside the sweep's record
    jobs = {starts(r["dir"])[0][1] for r in runs}
    assert len(jobs) == 2 and "-" not in jobs
    logs = store / "experiments" / "cfg" / "sweeps" / f"{sweep_id}.submitit"
    assert len(list(logs.glob("*_log.out"))) == 2


@pytest.mark.parametrize("interruption", ["scontrol requeue", "preemption signal"])
def test_a_requeued_job_continues_its_run_from_the_latest_checkpoint(
    repo: Path, slurm_cluster: SlurmCluster, interruption: str
) -> None:
    store = make_project(repo, "lr: 0.1\nsteps: 30\nstep_sleep: 0.1\n")
    sweep = start_cli(
        "sweep", "-c", "cfg.yaml", "--executor", "slurm", "--time", "5", "--",
        "python", "train.py",
        cwd=repo,
    )  # fmt: skip
    try:
        run_dir = wait_for_checkpoint(store, 5)
        (job_id,) = slurm_cluster.command("squeue", "-h", "-t", "running", "-o", "%i").split()
        if interruption == "scontrol requeue":
            # Slurm stops the job (SIGTERM to its processes) and queues it again
            slurm_cluster.command("scontrol", "requeue", job_id)
        else:
            # what Slurm sends before a time limit or a preemption: submitit checkpoints
            slurm_cluster.command("scancel", "--signal=USR2", job_id)
        output, _ = sweep.communicate(timeout=150)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 0, output

    (run,) = read_runs(store)  # the same run, continued: no second run
    assert run["dir"] == run_dir
    assert run["status"] == "completed"
    assert run["statuses"] == ["running", "interrupted", "running", "completed"]
    assert len(run["resumes"]) == 1
    (first, first_job), (resumed_at, resumed_job) = starts(run_dir)
    assert first == 0
    assert resumed_at >= 5  # from the latest checkpoint, not from the start
    assert run["summary"]["last_step"] == 30
    # both attempts ran as the same Slurm job
    assert first_job == resumed_job == job_id


def test_unreachable_slurm_is_refused_before_anything_is_submitted(
    repo: Path, tmp_path: Path
) -> None:
    store = make_project(repo, CONFIG)
    dead = tmp_path / "dead-slurm.conf"  # a controller that nobody runs
    dead.write_text(
        "ClusterName=dead\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=9\n"
        "MessageTimeout=2\nNodeName=localhost CPUs=1\nPartitionName=debug Nodes=localhost\n"
    )
    env = {"SLURM_CONF": str(dead), "SLURM_CONF_SERVER": ""}
    if shutil.which("sinfo") is None:
        env = {}  # then the sweep says that sinfo is missing
    result = run_cli(
        "sweep", "-c", "cfg.yaml", "--executor", "slurm", "--set", "lr=0.1,0.01", "--",
        "python", "train.py",
        env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Slurm is not reachable" in result.stderr
    assert "Unable to contact slurm controller" in result.stderr or "not installed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (store / "runs").exists() or not list((store / "runs").iterdir())
    assert not list(store.glob("experiments/*/sweeps/*.json"))


def test_submitit_local_executor_runs_the_same_tasks(repo: Path) -> None:
    """The code path of the Slurm executor (submitit, its checkpointable task, the result files)
    without Slurm: `launcher: {executor: slurm, cluster: local}`."""
    store = make_project(repo, CONFIG + "launcher:\n  executor: slurm\n  cluster: local\n")
    result = run_cli(
        "sweep", "-c", "cfg.yaml", "--set", "lr=0.1,0.01", "--", "python", "train.py",
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = read_runs(store)
    assert len(runs) == 2 and all(r["status"] == "completed" for r in runs)
    assert sorted(r["seeding"]["index"] for r in runs) == [0, 1]
    (record_path,) = store.glob("experiments/cfg/sweeps/*.json")
    logs = record_path.with_suffix(".submitit")
    assert len(list(logs.glob("*_result.pkl"))) == 2


def test_submitit_local_executor_continues_a_preempted_job(repo: Path) -> None:
    """The preemption signal (USR2) on submitit's LocalExecutor: the task checkpoints, stops its
    run (interrupted) and is requeued as `replicator run --resume` of that run."""
    store = make_project(
        repo,
        "lr: 0.1\nsteps: 30\nstep_sleep: 0.1\nlauncher:\n  executor: slurm\n  cluster: local\n",
    )
    sweep = start_cli("sweep", "-c", "cfg.yaml", "--", "python", "train.py", cwd=repo)
    try:
        run_dir = wait_for_checkpoint(store, 5)
        (record_path,) = store.glob("experiments/cfg/sweeps/*.json")
        task_pid = _submitit_task_pid(record_path.with_suffix(".submitit"))
        os.kill(task_pid, signal.SIGUSR2)
        output, _ = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 0, output
    (run,) = read_runs(store)
    assert run["dir"] == run_dir
    assert run["statuses"] == ["running", "interrupted", "running", "completed"]
    (first, _), (resumed_at, _) = starts(run_dir)
    assert first == 0 and resumed_at >= 5
    assert run["summary"]["last_step"] == 30


def _submitit_task_pid(folder: Path, timeout: float = 30) -> int:
    """The pid of the process that runs submitit's task (it handles the preemption signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["pgrep", "-f", f"submitit.core._submit {folder}"], capture_output=True, text=True
        )
        pids = [int(p) for p in done.stdout.split()]
        if pids:
            return min(pids)
        time.sleep(0.1)
    pytest.fail(f"no submitit task process for {folder}")


def test_an_unknown_partition_is_refused_naming_the_partitions(
    repo: Path, slurm_cluster: SlurmCluster
) -> None:
    store = make_project(repo, CONFIG)
    result = run_cli(
        "sweep", "-c", "cfg.yaml", "--executor", "slurm", "--partition", "gpu-nope",
        "--set", "lr=0.1,0.01", "--", "python", "train.py",
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Slurm partition 'gpu-nope' does not exist on this cluster; partitions: debug" in (
        result.stderr
    )
    assert not (store / "runs").exists() or not list((store / "runs").iterdir())
    assert slurm_cluster.command("squeue", "-h") == ""


def test_a_launcher_option_submitit_does_not_take_is_refused_naming_it(repo: Path) -> None:
    store = make_project(
        repo, CONFIG + "launcher:\n  executor: slurm\n  cluster: local\n  colour: blue\n"
    )
    result = run_cli(
        "sweep", "-c", "cfg.yaml", "--set", "lr=0.1,0.01", "--", "python", "train.py",
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "refused an option of the `launcher:` section: Parameter 'colour'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (store / "runs").exists() or not list((store / "runs").iterdir())
    # refused before the sweep is recorded: no record, nothing submitted
    assert not list(store.glob("experiments/*/sweeps/*"))
