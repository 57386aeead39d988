"""Cards and the checklist describe one config, one run per seed (issue 11.12).

Real runs: a script that joins with ``replicator.start()``, run by the real ``replicator run``
in a real git repository, at two learning rates and with a repeated seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.conftest import git, run_cli

SCRIPT = """\
import sys
import replicator

with replicator.start({"lr": float(sys.argv[1])}, experiment="acc") as run:
    run.summary["test_acc"] = 0.5 + run.seed / 100 + float(sys.argv[1])
"""


@pytest.fixture
def two_configs(repo: Path) -> Path:
    """lr=0.1 with seeds 1, 2, 3 (seed 1 twice); lr=0.2 with seeds 1, 2."""
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "add", "train.py")
    git(repo, "commit", "-qm", "train")
    for lr, seed in [("0.1", 1), ("0.1", 2), ("0.1", 3), ("0.1", 1), ("0.2", 1), ("0.2", 2)]:
        proc = run_cli("run", "--seed", str(seed), "--", "python", "train.py", lr, cwd=repo)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return repo


def _acc_name(card_json: str) -> str:
    meta = json.loads(card_json)["metadata"]
    (metric,) = [
        m for m in meta["model-index"][0]["results"][0]["metrics"] if m["type"] == "test_acc"
    ]
    return str(metric["name"]) + f" value={metric['value']}"


def test_model_card_describes_the_config_with_most_seeds(two_configs: Path) -> None:
    proc = run_cli("card", "model", "acc", cwd=two_configs)
    assert proc.returncode == 0, proc.stderr
    card = proc.stdout
    # lr=0.1: seeds 1, 2, 3 once each (never n=6 across both learning rates, nor n=4)
    assert "test_acc (mean over n=3 seeds" in card
    (seeds,) = [line for line in card.splitlines() if line.startswith("- **Seeds:**")]
    assert sorted(seeds.split("**")[2].split("(")[0].strip(" ").split(", ")) == ["1", "2", "3"]
    assert seeds.endswith("(n=3)")
    head = yaml.safe_load(card.split("---\n", 2)[1])
    (acc,) = [m for m in head["model-index"][0]["results"][0]["metrics"] if m["type"] == "test_acc"]
    assert acc["value"] == pytest.approx(0.5 + 0.02 + 0.1)
    assert "The runs of 'acc' have 2 configs; this describes lr=0.1 (3 seed(s))" in card
    assert "Other configs: lr=0.2 (2 seed(s))" in card
    assert "4 runs of config" not in card and "2 runs of config" in card  # seed 1 twice
    assert "lr: 0.1" in card and "lr: 0.2" not in card

    chosen = run_cli("card", "model", "acc", "--group", "lr=0.2", "--json", cwd=two_configs)
    assert chosen.returncode == 0, chosen.stderr
    assert "n=2 seeds" in _acc_name(chosen.stdout)
    assert "value=0.715" in _acc_name(chosen.stdout)

    wrong = run_cli("card", "model", "acc", "--group", "lr=0.3", cwd=two_configs)
    assert wrong.returncode == 2  # a usage error: no group has that value
    assert "No completed run matches lr=0.3" in wrong.stderr and "lr=0.2" in wrong.stderr


def test_checklist_uses_one_config_and_config_hash_chooses(two_configs: Path) -> None:
    from replicator.store import Store

    records = Store(two_configs / ".replicator").records()
    digest = next(r.meta["config_hash"] for r in records if r.config.get("lr") == 0.2)
    proc = run_cli("checklist", "acc", "--json", cwd=two_configs)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    items = {i["number"]: i["answer"] for i in data["items"]}
    assert items[17].startswith("For lr=0.1: 3 completed run(s) with seeds")
    assert "n=3)" in items[19]
    assert "lr in {0.1, 0.2}" in items[16]  # the range considered spans both configs
    assert any("Other configs: lr=0.2" in n for n in data["notes"])

    chosen = run_cli("checklist", "acc", "--config-hash", digest[:10], cwd=two_configs)
    assert chosen.returncode == 0, chosen.stderr
    assert "For lr=0.2: 2 completed run(s) with seeds" in chosen.stdout
    assert "chosen with --group/--config-hash" in chosen.stdout
