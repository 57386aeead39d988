"""Helpers of the Slurm and Ray sweep tests: a resumable training script (it checkpoints every
step and continues from its latest checkpoint when resumed) in a real git repository."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from ..conftest import git

TRAIN = textwrap.dedent(
    """\
    import os, time
    import replicator

    cfg = replicator.load_config("cfg.yaml")
    with replicator.start(cfg) as run:
        start = 0
        if run.resumed:
            ckpt = run.load_checkpoint()
            start = ckpt.step if ckpt is not None else 0
        job = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID") or "-"
        print(f"start at {start} in job {job}", flush=True)
        for step in range(start + 1, int(cfg["steps"]) + 1):
            run.log({"loss": float(cfg["lr"]) / step}, step=step)
            run.checkpoint({"step": step}, step=step)
            time.sleep(float(cfg["step_sleep"]))
        run.summary["last_step"] = step
    """
)


def make_project(repo: Path, config: str) -> Path:
    """``train.py`` and ``cfg.yaml`` committed in ``repo``; returns the store's path."""
    (repo / "train.py").write_text(TRAIN)
    (repo / "cfg.yaml").write_text(config)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "train")
    return repo / ".replicator"


def read_runs(store: Path) -> list[dict[str, Any]]:
    """run.json of every run (with 'summary', 'statuses' and 'dir')."""
    out = []
    for run_dir in sorted((store / "runs").glob("*")):
        meta = json.loads((run_dir / "run.json").read_text())
        summary = run_dir / "summary.json"
        meta["summary"] = json.loads(summary.read_text()) if summary.exists() else {}
        lines = (run_dir / "status.jsonl").read_text().splitlines()
        meta["statuses"] = [json.loads(line)["status"] for line in lines]
        meta["dir"] = run_dir
        out.append(meta)
    return out


def starts(run_dir: Path) -> list[tuple[int, str]]:
    """``(step, job id)`` of each session of the script in the run: where it started."""
    out = []
    for line in (run_dir / "stdout.log").read_text().splitlines():
        if line.startswith("start at "):
            step, _, job = line.removeprefix("start at ").partition(" in job ")
            out.append((int(step), job))
    return out


def wait_for_checkpoint(store: Path, step: int, timeout: float = 90) -> Path:
    """The run directory whose checkpoints reached ``step``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for manifest in store.glob("runs/*/checkpoints/manifest.json"):
            try:
                text = manifest.read_text()
            except OSError:
                continue
            if f"step{step:09d}" in text:
                return manifest.parent.parent
        time.sleep(0.1)
    pytest.fail(f"no run of {store} checkpointed step {step} within {timeout:.0f} s")
