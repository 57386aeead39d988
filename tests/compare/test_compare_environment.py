"""env diff / env check: differences ranked by how likely they change numbers."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

from replicator._util.io import atomic_write_json
from replicator.capture.environment import capture_environment
from replicator.capture.hardware import capture_hardware
from replicator.environment import check_environment, diff_environments, format_env_diff

ENV = {
    "python": {"version_info": [3, 11, 7], "implementation": "cpython"},
    "os": {"release": "6.1", "libc": "glibc 2.36"},
    "packages": {
        "numpy": {"version": "2.3.5", "origin": "index"},
        "click": {"version": "8.1.0", "origin": "index"},
        "mylib": {
            "version": "0.1",
            "origin": "editable",
            "path": "/src/mylib",
            "git": {"commit": "c1", "dirty": False},
        },
        "gone": {"version": "1.0", "origin": "index"},
        "pip": {"version": "24.0", "origin": "index"},
    },
    "torch": {"version": "2.9.0", "cuda": "13.0"},
    "relevant_env": {
        "OMP_NUM_THREADS": "4",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "PYTHONHASHSEED": "1",
    },
}
HW = {
    "cpu": {
        "machine": "x86_64",
        "model": "Xeon",
        "numeric_flags": ["avx2", "avx512f"],
        "logical_cores": 8,
    },
    "gpu": {"devices": [{"name": "H100"}], "driver": "580.1"},
}


def _changed() -> tuple[dict, dict]:
    env, hw = copy.deepcopy(ENV), copy.deepcopy(HW)
    env["python"]["version_info"] = [3, 12, 1]
    p = env["packages"]
    p["numpy"]["version"] = "2.4.0"
    p["click"]["version"] = "8.2.0"
    p["mylib"]["git"]["commit"] = "c2"
    del p["gone"], p["pip"]
    p["extra"] = {"version": "3", "origin": "index"}
    env["torch"]["cuda"] = "12.8"
    env["relevant_env"] = {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "2"}
    env["os"]["release"] = "6.8"
    hw["cpu"]["numeric_flags"] = ["avx2"]
    hw["gpu"] = {"devices": [{"name": "A100"}], "driver": "550.0"}
    return env, hw


def test_differences_are_ranked_by_likely_effect_on_numbers() -> None:
    env, hw = _changed()
    result = diff_environments(ENV, HW, env, hw)
    ranks = {d.key: d.rank for d in result.differences}
    assert ranks["package gone"] == 1
    assert ranks["package mylib"] == 1  # same version, other source commit
    assert ranks["Python minor version"] == 2
    assert ranks["package numpy"] == 3
    assert ranks["torch cuda build"] == 3
    assert ranks["CPU numeric instruction sets"] == 4
    assert ranks["$OMP_NUM_THREADS"] == 4
    assert ranks["GPUs"] == 5 and ranks["NVIDIA driver"] == 5
    assert ranks["$CUBLAS_WORKSPACE_CONFIG"] == 6
    assert ranks["package click"] == 7 and ranks["package pip"] == 7
    assert ranks["packages only in the second environment"] == 7 and ranks["OS release"] == 7
    assert "$PYTHONHASHSEED" not in ranks  # follows the seed; launch sets it
    assert [d.rank for d in result.differences] == sorted(d.rank for d in result.differences)
    assert result.within(2) == tuple(d for d in result.differences if d.rank <= 2)
    text = "\n".join(format_env_diff(result))
    assert "[1] packages missing or from another origin" in text
    assert "    package numpy: 2.3.5 -> 2.4.0 (version)" in text
    assert diff_environments(ENV, HW, ENV, HW).differences == ()


def test_origin_change_is_rank_one() -> None:
    env = copy.deepcopy(ENV)
    env["packages"]["numpy"] = {"version": "2.3.5", "origin": "local", "path": "/wheels/numpy"}
    (d,) = diff_environments(ENV, {}, env, {}).within(1)
    assert d.key == "package numpy" and d.note == "origin index -> local"


def _run(store: Path, run_id: str, env: dict, hw: dict) -> Path:
    folder = store / "runs" / run_id
    folder.mkdir(parents=True)
    atomic_write_json(folder / "run.json", {"id": run_id, "status": "completed"})
    atomic_write_json(folder / "environment.json", env)
    atomic_write_json(folder / "hardware.json", hw)
    return folder


def test_cli_env_diff_text_and_json(tmp_path: Path, cli) -> None:
    store = tmp_path / "store"
    _run(store, "20261126-000000-000a", ENV, HW)
    _run(store, "20261126-000000-000b", *_changed())
    env = {"REPLICATOR_STORE": str(store)}
    out = cli("env", "diff", "000a", "000b", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[2] == "[1] packages missing or from another origin"
    js = cli("env", "diff", "000a", "000b", "--json", "--max-rank", "2", env=env)
    data = json.loads(js.stdout)
    assert {d["rank"] for d in data["differences"]} == {1, 2}
    assert data["differences"][0]["category"] == "packages missing or from another origin"


def test_env_check_of_this_interpreter_is_clean_in_ranks_1_to_3(tmp_path: Path, cli) -> None:
    store = tmp_path / "store"
    folder = _run(store, "20261126-000000-000c", capture_environment(), capture_hardware())
    assert check_environment(folder).within(3) == ()
    out = cli("env", "check", "000c", env={"REPLICATOR_STORE": str(store)})
    assert out.returncode == 0, out.stdout + out.stderr
    # a run recorded elsewhere, with another numpy: rank 3, exit code 1
    env = capture_environment()
    env["packages"]["numpy"] = {**env["packages"].get("numpy", {}), "version": "0.0.1"}
    _run(store, "20261126-000000-000d", env, capture_hardware())
    bad = cli(
        "env", "check", "000d", "--python", sys.executable, env={"REPLICATOR_STORE": str(store)}
    )
    assert bad.returncode == 1
    assert "package numpy: 0.0.1 ->" in bad.stdout


@pytest.mark.parametrize("rank", [1, 7])
def test_cli_env_check_fail_rank(tmp_path: Path, cli, rank: int) -> None:
    store = tmp_path / "store"
    env = capture_environment()
    env["os"] = {"release": "0.0-other"}
    _run(store, "20261126-000000-000e", env, capture_hardware())
    out = cli(
        "env", "check", "000e", "--fail-rank", str(rank), env={"REPLICATOR_STORE": str(store)}
    )
    assert out.returncode == (1 if rank == 7 else 0)
