"""``replicator reproduce`` names the likely cause when a run does not come back: what the
original run recorded (a random PYTHONHASHSEED), the static findings of its code with file and
line, and the audit to run."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from replicator.reproduce import reproduce

TRAIN = """\
import replicator

words = {"a", "bb", "ccc", "dddd", "eeeee", "ffffff", "ggggggg", "hhhhhhhh"}
with replicator.start(experiment="hash") as run:
    total = 0.0
    for word in words:
        total = total * 0.5 + len(word)
    run.log({"total": total}, step=0)
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_reproduce_names_random_hash_seed_and_the_set_iteration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "set order")
    store = tmp_path / "store"
    monkeypatch.setenv("REPLICATOR_STORE", str(store))
    monkeypatch.chdir(project)
    # started with plain python: PYTHONHASHSEED random, as most scripts are first run
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    subprocess.run([sys.executable, "train.py"], cwd=project, env=env, check=True)
    [run_dir] = (store / "runs").iterdir()

    result = reproduce(run_dir.name, env="current", stdout=io.BytesIO(), stderr=io.BytesIO())

    # 8 words of distinct lengths: another order gives another total (1 in 40320 the same)
    assert result.verdict == "not reproduced", result
    causes = list(result.causes)
    hash_cause = next(i for i, c in enumerate(causes) if c.startswith("PYTHONHASHSEED was random"))
    finding = next(i for i, c in enumerate(causes) if c.startswith("code train.py:6: iteration"))
    assert hash_cause < finding  # what the run recorded comes before what the code might do
    assert causes[-1].endswith(f"replicator audit {run_dir.name}")
