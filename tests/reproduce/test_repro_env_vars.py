"""A variable the original run needed is restored by `reproduce` and compared by `env` commands.

The real case: a training script that loads its checkpoint only with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (recent torch refuses otherwise), plus a variable of the
user's own that changes the result. Recorded with both set, reproduced from a shell that has
neither: the reproduction must set them again, say so, and come out REPRODUCED; ``env check``
must name them, and a secret variable is never restored or written.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SCRIPT = """\
import os, sys
import replicator

if os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") != "1":
    sys.exit("_pickle.UnpicklingError: Weights only load failed (set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1)")
scale = {"fast": 2.0, "slow": 3.0}[os.environ["MY_EXPERIMENT_MODE"]]
with replicator.start(experiment="env") as run:
    for step in range(5):
        run.log({"loss": scale / (step + 1) + run.seed}, step=step)
"""
SECRET = "tok-" + "9f8e7d6c" + "5b4a39281706"  # assembled: no key literal in the source


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "MY_EXPERIMENT_MODE", "MY_API_TOKEN")
    }
    env["REPLICATOR_STORE"] = str(tmp_path / "store")
    return env


def _run_json(store: Path, run_id: str) -> dict:
    return json.loads((store / "runs" / run_id / "run.json").read_text())


def test_reproduce_restores_the_variables_the_run_needed(repo: Path, tmp_path: Path, cli) -> None:
    import subprocess

    (repo / "train.py").write_text(SCRIPT)
    subprocess.run(["git", "add", "train.py"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "train"], cwd=repo, check=True)
    env = _clean_env(tmp_path)
    recorded_env = {
        **env,
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
        "MY_EXPERIMENT_MODE": "slow",
        "MY_API_TOKEN": SECRET,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "replicator", "run", "--seed", "3", "--", sys.executable, "train.py"],
        cwd=repo, env=recorded_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    store = tmp_path / "store"
    (original,) = [p.name for p in (store / "runs").iterdir() if p.is_dir()]

    # the current shell lacks both: env check names them, ranked with the ML library variables
    check = cli("env", "check", original, cwd=repo, env=env)
    assert "$TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD: 1 -> None" in check.stdout, check.stdout
    assert "$MY_EXPERIMENT_MODE: slow -> None" in check.stdout, check.stdout

    repro = cli("reproduce", original, "--env", "current", cwd=repo, env=env, timeout=300)
    assert repro.returncode == 0, repro.stdout + repro.stderr
    assert "REPRODUCED" in repro.stdout and "NOT REPRODUCED" not in repro.stdout, repro.stdout
    (said,) = [line for line in repro.stdout.splitlines() if "set as recorded:" in line]
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in said and "other variable(s) you had set" in said
    assert "secret variables not restored (set them yourself): MY_API_TOKEN" in repro.stdout
    (reproduction,) = [
        p.name for p in (store / "runs").iterdir() if p.is_dir() and p.name != original
    ]
    meta = _run_json(store, reproduction)
    assert {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "MY_EXPERIMENT_MODE"} <= set(meta["restored_env"])
    assert "MY_API_TOKEN" not in meta["restored_env"]
    assert meta["secret_env_not_restored"] == ["MY_API_TOKEN"]
    # the two runs have the same variables: nothing to report between them
    diff = cli("env", "diff", original, reproduction, cwd=repo, env=env)
    assert "MY_EXPERIMENT_MODE" not in diff.stdout and "TORCH_FORCE" not in diff.stdout
    # the secret reached no file of the store
    for path in store.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
