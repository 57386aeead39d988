"""reproduce()'s option checks and its clean-up when a stage fails, on a run recorded by the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from replicator.errors import UsageError
from replicator.reproduce import ReproduceError, reproduce
from replicator.store import Store


@pytest.fixture
def run_id(repo: Path) -> str:
    """A completed run of a stdlib-only command in the `repo` fixture's git repository."""
    proc = subprocess.run(
        [sys.executable, "-m", "replicator", "run", "--", "python", "-c", "print(1)"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return Store.open().get("last").id


def test_bad_options_are_refused_before_anything_runs(run_id: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    with pytest.raises(UsageError, match="--env must be 'fresh' or 'current', got 'docker'"):
        reproduce(run_id, env="docker", workdir=work)
    with pytest.raises(UsageError, match="--rtol and --atol must not be negative"):
        reproduce(run_id, atol=-1e-3, workdir=work)
    assert not work.exists()


def test_a_failed_stage_removes_the_checkout_and_the_work_directory(
    repo: Path, run_id: str, tmp_path: Path
) -> None:
    run_dir = Store.open().resolve(run_id)
    environment = json.loads((run_dir / "environment.json").read_text())
    del environment["packages"]
    (run_dir / "environment.json").write_text(json.dumps(environment))
    work = tmp_path / "work"
    stages: list[tuple[str, str]] = []
    with pytest.raises(ReproduceError, match=r"stage 'environment'.*recorded no packages"):
        reproduce(
            run_id,
            env="fresh",
            workdir=work,
            on_stage=lambda name, detail: stages.append((name, detail)),
            stdout=io.BytesIO(),
            stderr=io.BytesIO(),
        )
    assert [name for name, _ in stages] == ["host", "host", "checkout", "checkout", "environment"]
    assert list(work.iterdir()) == []
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert len(worktrees.splitlines()) == 1
