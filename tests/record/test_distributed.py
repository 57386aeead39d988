"""Distributed runs: two real CPU ranks under torchrun (gloo), with and without `replicator run`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import replicator
from replicator.errors import UsageError
from replicator.store import Store, read_run
from replicator.store.frames import load_metrics
from replicator.store.metrics import metric_ranks, read_metrics

SCRIPT = Path(__file__).with_name("ddp_train.py")


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def torchrun(port: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        port,
        "ddp_train.py",
    ]


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATOR_")}
    return {**env, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", **extra}


def run_dirs(repo: Path) -> list[Path]:
    return sorted((repo / ".replicator" / "runs").iterdir())


def check_two_rank_run(run_dir: Path) -> None:
    """One run, each rank's metrics in its own file, rank 0's summary and checkpoint only."""
    record = read_run(run_dir)
    assert record.status == "completed"
    distributed = record.meta["distributed"]
    assert distributed["world_size"] == 2
    assert {
        k: (v["rank"], v["local_rank"], v["status"]) for k, v in distributed["ranks"].items()
    } == {
        "0": (0, 0, "completed"),
        "1": (1, 1, "completed"),
    }
    assert metric_ranks(run_dir / "metrics.jsonl") == [0, 1]
    zero = read_metrics(run_dir / "metrics.jsonl")
    one = read_metrics(run_dir / "metrics.jsonl", rank=1)
    # no step twice, no line of the other rank in a rank's file
    for entries, rank in ((zero, 0), (one, 1)):
        assert sorted((e["key"], e["step"]) for e in entries) == sorted(
            (key, step) for key in ("loss", "me") for step in range(4)
        )
        assert {e["value"] for e in entries if e["key"] == "me"} == {rank}
    # the ranks trained one model: the same loss at every step
    loss = {e["step"]: e["value"] for e in zero if e["key"] == "loss"}
    assert loss == {e["step"]: e["value"] for e in one if e["key"] == "loss"}
    both = read_metrics(run_dir / "metrics.jsonl", rank="all")
    assert sorted({e["rank"] for e in both}) == [0, 1] and len(both) == 16
    frame = load_metrics(runs=[str(run_dir)], rank="all")
    assert sorted(frame.groupby("rank").size().to_dict().items()) == [(0, 8), (1, 8)]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_rank"] == 0 and summary["me"] == 0
    manifest = json.loads((run_dir / "checkpoints" / "manifest.json").read_text())
    assert len(list((run_dir / "checkpoints").glob("*.safetensors"))) == 1, manifest


def test_bare_torchrun_records_one_run_per_launch(repo: Path) -> None:
    shutil.copy(SCRIPT, repo / "ddp_train.py")
    port = free_port()
    done = subprocess.run(
        torchrun(port), cwd=repo, env=worker_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    (run_dir,) = run_dirs(repo)
    assert f"rank 0 run {run_dir.name} world 2 saved True" in done.stdout
    assert f"rank 1 run {run_dir.name} world 2 saved False" in done.stdout
    check_two_rank_run(run_dir)
    launch = read_run(run_dir).meta["distributed"]["launch_command"]
    assert launch[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node"]

    # A second launch on the same port gets a run of its own, and rank 1's crash is recorded.
    failed = subprocess.run(
        torchrun(port),
        cwd=repo,
        env=worker_env(DDP_FAIL_RANK="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode != 0
    first, second = run_dirs(repo)
    assert first == run_dir and read_run(first).status == "completed"  # not joined again
    record = read_run(second)
    assert record.status != "completed"
    rank1 = record.meta["distributed"]["ranks"]["1"]
    assert rank1["status"] == "failed"
    assert rank1["error"] == "RuntimeError: boom on rank 1"


def test_torchrun_under_replicator_run(repo: Path, cli) -> None:
    shutil.copy(SCRIPT, repo / "ddp_train.py")
    result = cli("run", "--", *torchrun(free_port()), cwd=repo, env=worker_env())
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = run_dirs(repo)
    assert read_run(run_dir).meta["launcher"] == "cli"
    check_two_rank_run(run_dir)
    # run.json itself names the ranks (not only the readers that merge ranks/)
    assert set(json.loads((run_dir / "run.json").read_text())["distributed"]["ranks"]) == {"0", "1"}
    shown = cli("show", run_dir.name, cwd=repo, env=worker_env())
    assert "2 of world size 2 (0: completed, 1: completed); metrics shown: rank 0" in shown.stdout


def test_rank_waits_for_rank_zero_then_says_what_to_do(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": free_port(),
        "REPLICATOR_RENDEZVOUS_TIMEOUT_S": "0.3",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(
        UsageError, match=r"Rank 1 of 2 waited 0.3 s for rank 0 to open .*launches/"
    ):
        replicator.start({"lr": 0.1}, store=repo / ".replicator")
    assert Store(repo / ".replicator").records() == []


def test_bad_rank_variable_is_a_clear_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "first")
    with pytest.raises(UsageError, match=r"\$RANK must be an integer >= 0 .* got 'first'"):
        replicator.start({"lr": 0.1}, store=repo / ".replicator")


def test_a_rank_on_another_node_is_judged_by_signs_of_life(repo: Path, cli) -> None:
    """A rank recorded on another host has no pid to look at here: it stays running while the
    launch's heartbeat or its own files are fresh, and reads crashed once they are stale (0.2.0
    read it crashed at once, so every multi-node run showed a crashed rank)."""
    shutil.copy(SCRIPT, repo / "ddp_train.py")
    result = cli("run", "--", *torchrun(free_port()), cwd=repo, env=worker_env())
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = run_dirs(repo)
    rank1 = run_dir / "ranks" / "rank1.json"
    data = json.loads(rank1.read_text())
    rank1.write_text(json.dumps({**data, "status": "running", "host": "node-b", "pid": 1}))
    assert read_run(run_dir).meta["distributed"]["ranks"]["1"]["status"] == "running"
    old = 1_000_000_000  # 2001: every sign of life of rank 1 long stale
    for name in ("heartbeat", "ranks/rank1.json", "metrics.rank1.jsonl"):
        if (run_dir / name).exists():
            os.utime(run_dir / name, (old, old))
    assert read_run(run_dir).meta["distributed"]["ranks"]["1"]["status"] == "crashed"
