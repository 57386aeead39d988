"""Helpers of the sweep tests (grid, random, Optuna, local executor): a tiny real script in a
real git repository, and readers of the runs and sweep records it leaves."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from ..conftest import git

TRAIN = textwrap.dedent(
    """\
    import os, sys, time
    import replicator

    cfg = replicator.load_config("cfg.yaml")
    run = replicator.start(cfg)
    print("started", flush=True)
    started = time.time()
    time.sleep(float(cfg.get("sleep", 0)))
    if cfg.get("fail_if") is not None and os.path.exists(str(cfg["fail_if"])):
        sys.exit(3)
    x = float(cfg["x"])
    for step in range(int(cfg.get("steps", 1))):
        run.log({"loss": (x - 1.0) ** 2 + 1.0 / (step + 1)}, step=step)
        time.sleep(float(cfg.get("step_sleep", 0)))
    run.summary["pid"] = os.getpid()
    run.summary["started"] = started
    run.summary["ended"] = time.time()
    run.summary["leak"] = os.environ.get("SWEEP_TEST_LEAK", "")
    os.environ["SWEEP_TEST_LEAK"] = "set by a job"
    run.finish()
    """
)


def make_project(repo: Path, config: str = "x: 0.0\nmodel: small\nsleep: 0\n") -> Path:
    """``train.py`` and ``cfg.yaml`` committed in ``repo``; returns the store's path."""
    (repo / "train.py").write_text(TRAIN)
    (repo / "cfg.yaml").write_text(config)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "train")
    return repo / ".replicator"


def runs(store: Path) -> list[dict[str, Any]]:
    """run.json (with its summary as 'summary') of every run of the store."""
    out = []
    for run_dir in sorted((store / "runs").glob("*")):
        meta = json.loads((run_dir / "run.json").read_text())
        summary_path = run_dir / "summary.json"
        meta["summary"] = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        meta["dir"] = str(run_dir)
        out.append(meta)
    return out


def sweep_records(store: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(store.glob("experiments/*/sweeps/*.json"))]


def status(cli: Any, sweep_id: str) -> dict[int, str]:
    """Each job's state as ``replicator sweep status --json`` shows it."""
    result = cli("sweep", "status", sweep_id, "--json")
    assert result.returncode == 0, result.stderr
    return {job["index"]: job["state"] for job in json.loads(result.stdout)["jobs"]}
