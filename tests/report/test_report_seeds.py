"""One value per seed: repeated runs of a seed and reproductions are not new seeds (issue 11.5).

Real runs: a script that joins with ``replicator.start()``, run by the real ``replicator run``
in a real git repository, reproduced by the real ``replicator reproduce``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.conftest import git, run_cli

SCRIPT = """\
import sys
import replicator

with replicator.start({"lr": float(sys.argv[1])}, experiment="acc") as run:
    run.summary["acc"] = 0.5 + run.seed / 1000 + float(sys.argv[1])
"""


def _run(repo: Path, *args: str) -> None:
    proc = run_cli("run", *args, cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def repeated(repo: Path) -> Path:
    """lr=0.1: seed 5 three times, seed 6 once; lr=0.2: seed 5 once and a
    reproduction of that run."""
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "add", "train.py")
    git(repo, "commit", "-qm", "train")
    for _ in range(3):
        _run(repo, "--seed", "5", "--", "python", "train.py", "0.1")
    _run(repo, "--seed", "6", "--", "python", "train.py", "0.1")
    _run(repo, "--seed", "5", "--", "python", "train.py", "0.2")
    proc = run_cli("reproduce", "last", "--env", "current", cwd=repo, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return repo


def test_report_counts_each_config_and_seed_once(repeated: Path) -> None:
    proc = run_cli("report", "acc", "--metric", "acc", "--format", "md", cwd=repeated)
    assert proc.returncode == 0, proc.stderr
    # lr=0.1 has 2 distinct seeds (5 and 6), lr=0.2 one: never "4 seeds" or "5 seeds"
    assert re.search(r"\| 0\.1 \| 2 \|", proc.stdout), proc.stdout
    assert re.search(r"\| 0\.2 \| 1 \|", proc.stdout), proc.stdout
    assert "over 1-2 seeds" in proc.stdout
    assert "n counts distinct seeds" in proc.stdout
    assert "1 reproduction run(s) left out" in proc.stdout
    assert "2 run(s) repeating a config and seed left out" in proc.stdout
    assert re.search(r"Warning: 3 runs of config \w+ share 1 seed\(s\): 5 \(3 runs\)", proc.stderr)

    as_json = run_cli("report", "acc", "--metric", "acc", "--json", cwd=repeated)
    data = json.loads(as_json.stdout)
    assert {r["lr"]: r["n"] for r in data["rows"]} == {"0.1": 2, "0.2": 1}
    assert any("5 (3 runs)" in w for w in data["warnings"])
    assert len(data["excluded"]) == 3  # two repeats of seed 5 and the reproduction

    # a reproduction joins its config and seed when asked for, and is still counted once
    both = run_cli(
        "report", "acc", "--metric", "acc", "--json", "--include-reproductions", cwd=repeated
    )
    data = json.loads(both.stdout)
    assert {r["lr"]: r["n"] for r in data["rows"]} == {"0.1": 2, "0.2": 1}
    assert any("share 1 seed(s): 5 (2 runs)" in w for w in data["warnings"])


def test_load_runs_defaults_to_one_row_per_config_and_seed(repeated: Path) -> None:
    from replicator import load_runs
    from replicator.store.frames import SeedWarning

    store = repeated / ".replicator"
    with pytest.warns(SeedWarning, match=r"share 1 seed\(s\): 5 \(3 runs\)"):
        runs = load_runs(experiment="acc", store=store)
    assert sorted(zip(runs["config.lr"], runs["seed"])) == [(0.1, 5), (0.1, 6), (0.2, 5)]
    # of the three seed-5 runs, the latest is kept
    every = load_runs(experiment="acc", store=store, one_per_seed=False)
    assert len(every) == 5  # the reproduction is still left out
    latest = every[(every["seed"] == 5) & (every["config.lr"] == 0.1)]["id"].max()
    assert latest in set(runs["id"])
    assert (
        len(load_runs(experiment="acc", store=store, one_per_seed=False, reproductions=True)) == 6
    )
