"""The script's side of `replicator run`: the error hook and the sources of loaded configs."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from pathlib import Path

import replicator
from replicator.record import script

from ..conftest import run_cli


def test_importing_replicator_leaves_the_excepthook_alone(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "before = sys.excepthook\n"
        "import replicator, replicator.record\n"
        "assert sys.excepthook is before, sys.excepthook\n"
    )
    env = {"REPLICATOR_RUN_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_hook_of_a_joined_script_chains_to_the_previous_one(repo: Path) -> None:
    (repo / "t.py").write_text(
        "import sys, replicator\n"
        "def mine(t, e, tb):\n"
        "    print('mine:', e, file=sys.stderr)\n"
        "sys.excepthook = mine\n"
        "with replicator.start({}):\n"
        "    pass\n"
        "raise ValueError('boom')\n"
    )
    proc = run_cli("run", "--", "python", "t.py", cwd=repo)
    assert proc.returncode == 1
    assert "mine: boom" in proc.stderr and "Error: boom" not in proc.stderr


def test_a_replicator_error_after_the_run_reads_like_a_cli_error(repo: Path) -> None:
    (repo / "t.py").write_text(
        "import replicator\n"
        "from replicator.errors import CheckpointError\n"
        "with replicator.start({}) as run:\n"
        "    raise CheckpointError('no checkpoint to resume from')\n"
    )
    proc = run_cli("run", "--", "python", "t.py", cwd=repo)
    assert proc.returncode == 1
    assert "Error: no checkpoint to resume from" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_loaded_config_is_not_kept_alive(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("lr: 0.1\n")
    cfg = replicator.load_config(tmp_path / "c.yaml", overrides=["lr=0.2"])
    assert script.sources_of(cfg) == ([str(tmp_path / "c.yaml")], ["lr=0.2"])
    ref = weakref.ref(cfg)
    key = id(cfg)
    del cfg
    gc.collect()
    assert ref() is None
    assert key not in script._sources


def test_sources_are_never_those_of_another_config(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("lr: 0.1\n")
    for _ in range(50):  # ids of freed configs get reused
        replicator.load_config(tmp_path / "c.yaml")
        other = replicator.capture_args({"lr": 0.3})
        assert script.sources_of(other) == ([], [])
        assert script.sources_of({"lr": 0.1}) == ([], [])
