"""Helpers for the reproduce tests (a uniquely named module: tests/ has several conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import replicator

SOURCE = Path(replicator.__file__).resolve().parents[2]  # the replicator checkout (src layout)

TRAIN = '''\
"""A quick numpy experiment recorded by replicator."""
import sys
from pathlib import Path

import numpy as np

import replicator
from helper import SCALE

with replicator.start(experiment="demo") as run:
    rng = np.random.default_rng(run.seed)
    w = 0.0
    for step in range(12):
        x = rng.normal(size=64) * SCALE
        loss = float(np.mean((x - w) ** 2))
        w += 0.2 * (float(np.mean(x)) - w)
        run.log({"loss": loss}, step=step)
    run.summary["final_w"] = w
    Path("out").mkdir(exist_ok=True)
    np.save("out/weights.npy", np.array([w, loss]))
    print(f"final w {w:.6f}")
'''


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def find_uv() -> str:
    from replicator.reproduce import find_uv as _find

    found = _find()
    if found is None:
        pytest.skip("uv is not installed")
    return found


def make_venv(path: Path, *packages: str) -> Path:
    """A uv venv with replicator (editable, from this checkout) and ``packages``."""
    uv = find_uv()
    base = getattr(sys, "_base_executable", sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    subprocess.run([uv, "venv", "-q", "--python", base, str(path)], check=True, env=env)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(path / "bin" / "python"),
            "-e",
            str(SOURCE),
            *packages,
        ],
        check=True,
        env=env,
    )
    return path / "bin" / "python"
