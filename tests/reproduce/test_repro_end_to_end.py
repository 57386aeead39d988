"""Acceptance: real git repos, real venvs (uv), real runs through launch(), real reproductions."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from repro_helpers import SOURCE, git, make_venv

from replicator._util.io import atomic_write_json, read_json
from replicator.reproduce import ReproduceError, reproduce
from replicator.store import Store

pytestmark = [
    pytest.mark.slow,
]


def _quiet() -> dict[str, io.BytesIO]:
    return {"stdout": io.BytesIO(), "stderr": io.BytesIO()}


def test_dirty_run_with_untracked_helper_reproduces_after_the_tree_moved_on(
    project: Path, recording_python: Path, record
) -> None:
    # uncommitted change to train.py AND an untracked helper module
    (project / "train.py").write_text((project / "train.py").read_text().replace("12)", "15):  #"))
    (project / "helper.py").write_text("SCALE = 2.5\n")
    run_id = record(recording_python)
    original = Store.open().get(run_id)
    assert original.summary["final_w"] != 0
    # the working tree moves on: a new commit, changed files, the helper deleted
    (project / "helper.py").unlink()
    (project / "train.py").write_text("raise SystemExit('the new code is broken')\n")
    git(project, "commit", "-qam", "rewrite")
    (project / "notes.txt").write_text("later\n")
    status_before = git(project, "status", "--porcelain")

    stages: list[str] = []
    result = reproduce(run_id, env="fresh", on_stage=lambda n, d: stages.append(n), **_quiet())

    assert result.verdict == "reproduced", result.as_dict()
    assert result.exit_code == 0
    kinds = {(c.kind, c.name): c.status for c in result.checks}
    assert kinds[("summary", "final_w")] == "exact"
    assert kinds[("history", "loss")] == "exact"
    history = next(c for c in result.checks if c.kind == "history")
    assert history.original == "15 points"  # the uncommitted change ran, and ran again
    assert kinds[("output", "out/weights.npy")] == "exact"
    new_meta = read_json(result.run_dir / "run.json")
    assert new_meta["reproduction_of"] == run_id
    assert new_meta["seed"] == 7
    verdict = read_json(result.run_dir / "verdict.json")
    assert verdict["verdict"] == "reproduced"
    assert [s["name"] for s in verdict["stages"]] == [
        "host",
        "checkout",
        "environment",
        "data",
        "run",
        "compare",
    ]
    assert "uv venv" in verdict["stages"][2]["detail"]
    # the reproduction ran the snapshot's code in the fresh venv, not the user's tree
    env = read_json(result.run_dir / "environment.json")
    assert "replicator-reproduce-" in env["python"]["executable"]
    code_a = read_json(original.dir / "code.json")
    code_b = read_json(result.run_dir / "code.json")
    assert code_a["snapshot_tree"] == code_b["snapshot_tree"]
    # the user's working tree, index and worktree list are untouched
    assert git(project, "status", "--porcelain") == status_before
    assert not (project / "helper.py").exists()
    assert len(git(project, "worktree", "list").splitlines()) == 1
    assert not Path(verdict["stages"][1]["detail"].rsplit(" at ", 1)[1]).exists()


def test_changed_data_is_refused_then_named_as_the_cause(
    project: Path, recording_python: Path, record
) -> None:
    from replicator.data import fingerprint_datasets

    data = project / "data"
    data.mkdir()
    (data / "scale.txt").write_text("2.0\n")
    (project / "helper.py").write_text(
        "from pathlib import Path\nSCALE = float(Path('data/scale.txt').read_text())\n"
    )
    git(project, "add", "helper.py")
    git(project, "commit", "-qm", "helper reads data")
    run_id = record(recording_python)
    # what capture will do once datasets are declared: fingerprints in run.json "data"
    run_dir = Store.open().resolve(run_id)
    meta = read_json(run_dir / "run.json")
    meta["data"] = fingerprint_datasets(
        {"scale": "data/scale.txt"}, store=Store.open(), base_dir=project
    )
    atomic_write_json(run_dir / "run.json", meta)

    (data / "scale.txt").write_text("3.0\n")
    with pytest.raises(ReproduceError, match=r"stage 'data'.*scale.*allow-data-change"):
        reproduce(run_id, env="current", **_quiet())
    result = reproduce(run_id, env="current", allow_data_change=True, **_quiet())
    assert result.verdict == "not reproduced"
    assert result.exit_code == 1
    assert any(c.startswith("data: dataset 'scale'") for c in result.causes), result.causes
    assert {c.name for c in result.checks if c.status == "mismatch"} >= {"final_w", "loss"}
    history = next(c for c in result.checks if c.kind == "history")
    assert "diverges at step 0" in history.detail


def _tinylib(root: Path, version: str, scale: float) -> Path:
    pkg = root / f"tinylib-{version}"
    (pkg / "tinylib").mkdir(parents=True)
    (pkg / "tinylib" / "__init__.py").write_text(f"SCALE = {scale}\n")
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        f'[project]\nname = "tinylib"\nversion = "{version}"\n'
    )
    return pkg


def test_planted_package_version_change_is_named(project: Path, tmp_path: Path, record) -> None:
    from repro_helpers import find_uv

    python = make_venv(tmp_path / "venv", str(_tinylib(tmp_path, "1.0", 2.0)))
    (project / "helper.py").write_text("from tinylib import SCALE\n")
    run_id = record(python)
    uv = find_uv()
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), str(_tinylib(tmp_path, "1.1", 2.2))],
        check=True,
    )
    result = reproduce(run_id, env="current", **_quiet())
    assert result.verdict == "not reproduced"
    assert any("package tinylib" in w and "1.0 -> 1.1" in w for w in result.causes), result.causes


def test_editable_package_is_installed_at_its_recorded_commit_with_its_diff(
    project: Path, tmp_path: Path, record
) -> None:

    lib = tmp_path / "helperlib"
    (lib / "helperlib").mkdir(parents=True)
    (lib / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "helperlib"\nversion = "0.1"\n'
    )
    (lib / "helperlib" / "__init__.py").write_text("SCALE = 1.0\n")
    git(lib, "init", "-q", "-b", "main")
    git(lib, "add", "-A")
    git(lib, "commit", "-qm", "lib")
    (lib / "helperlib" / "__init__.py").write_text("SCALE = 1.75  # uncommitted\n")
    python = make_venv(tmp_path / "venv", "-e", str(lib))
    (project / "helper.py").write_text("from helperlib import SCALE\n")
    run_id = record(python)
    # capture snapshotted the editable package's own uncommitted change
    run_dir = Store.open().resolve(run_id)
    env = read_json(run_dir / "environment.json")
    assert env["packages"]["helperlib"]["git"]["snapshot"]
    # the package moves on: a new commit and other uncommitted changes
    git(lib, "commit", "-qam", "scale 1.75")
    (lib / "helperlib" / "__init__.py").write_text("SCALE = 9.0\n")

    fresh = reproduce(run_id, env="fresh", **_quiet())
    assert fresh.verdict == "reproduced", fresh.as_dict()
    assert [st.name for st in fresh.stages][:3] == ["host", "checkout", "environment"]
    installed = read_json(fresh.run_dir / "environment.json")["packages"]["helperlib"]
    assert installed["origin"] == "editable"
    assert "pkg-helperlib" in installed["path"]
    assert len(git(lib, "worktree", "list").splitlines()) == 1

    current = reproduce(run_id, env="current", **_quiet())
    assert current.verdict == "not reproduced"
    assert any("package helperlib" in c and "source commit differs" in c for c in current.causes)


def test_exported_requirements_install_and_env_check_is_clean(
    project: Path, tmp_path: Path, recording_python: Path, record, cli
) -> None:
    from repro_helpers import find_uv

    (project / "helper.py").write_text("SCALE = 1.0\n")
    run_id = record(recording_python)
    out = cli("env", "export", run_id, "--format", "requirements", "-o", str(tmp_path / "env"))
    assert out.returncode == 0, out.stderr
    req = (tmp_path / "env" / "requirements.txt").read_text()
    assert "numpy==" in req and "-e " in req
    uv = find_uv()
    subprocess.run([uv, "venv", "-q", str(tmp_path / "fresh")], check=True)
    python = tmp_path / "fresh" / "bin" / "python"
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(python),
            "-r",
            str(tmp_path / "env" / "requirements.txt"),
        ],
        check=True,
    )
    check = subprocess.run(
        [str(python), "-m", "replicator", "env", "check", run_id, "--json", "--fail-rank", "3"],
        capture_output=True,
        text=True,
    )
    top = [d for d in json.loads(check.stdout)["differences"] if d["rank"] <= 3]
    recorded = read_json(Store.open().resolve(run_id) / "environment.json")["packages"]
    head = git(SOURCE, "rev-parse", "HEAD")
    if recorded["replicator"]["git"]["commit"] != head:
        # someone committed to replicator's own checkout meanwhile: a true rank-1 difference
        top = [d for d in top if d["key"] != "package replicator"]
    else:
        assert check.returncode == 0, check.stdout + check.stderr
    assert top == []


def test_cli_reproduce_json_and_exit_code(
    project: Path, recording_python: Path, record, cli
) -> None:
    (project / "helper.py").write_text("SCALE = 0.5\n")
    run_id = record(recording_python)
    out = cli("reproduce", run_id, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "reproduced" and data["original"] == run_id
    assert "compare: reproduced" in out.stderr
    text = cli("reproduce", run_id, "--env", "current", "--metrics", "final_w")
    assert text.returncode == 0, text.stderr
    assert "Verdict: REPRODUCED" in text.stdout
    assert "history loss" not in text.stdout


def test_unavailable_package_fails_the_environment_stage(
    project: Path, recording_python: Path, record
) -> None:
    (project / "helper.py").write_text("SCALE = 1.0\n")
    run_id = record(recording_python)
    run_dir = Store.open().resolve(run_id)
    env = read_json(run_dir / "environment.json")
    env["packages"]["numpy"]["version"] = "0.0.1"
    atomic_write_json(run_dir / "environment.json", env)
    with pytest.raises(
        ReproduceError, match=r"stage 'environment': package not installable \(numpy==0.0.1\)"
    ):
        reproduce(run_id, env="fresh", **_quiet())
    assert len(git(project, "worktree", "list").splitlines()) == 1


def test_failed_command_and_nothing_comparable_are_never_reproduced(
    project: Path, recording_python: Path, record
) -> None:
    (project / "train.py").write_text("print('no metrics, no files')\n")
    run_id = record(recording_python)
    nothing = reproduce(run_id, env="current", **_quiet())
    assert nothing.verdict == "nothing comparable" and nothing.exit_code == 1
    assert nothing.checks == ()
    # data kept outside git (ignored) and not declared: the snapshot lacks it
    (project / "train.py").write_text(
        "from pathlib import Path\nprint(Path('data/input.txt').read_text())\n"
    )
    (project / "data").mkdir()
    (project / "data" / "input.txt").write_text("hello\n")
    run_id = record(recording_python)
    failed = reproduce(run_id, env="current", **_quiet())
    assert failed.verdict == "failed" and failed.exit_code == 1
    assert failed.causes[0].startswith("run: the command failed with exit code 1")
    assert "FileNotFoundError" in failed.causes[0]
    assert "declare" in failed.causes[0]


CONFIGURED = """\
import numpy as np

import replicator

cfg = replicator.load_config("config.yaml")
with replicator.start(cfg) as run:
    rng = np.random.default_rng(run.seed)
    w = 0.0
    for step in range(cfg.steps):
        w += cfg.lr * (rng.normal() - w)
        run.log({"w": w}, step=step)
    run.summary["w"] = w
"""


def test_recorded_config_overrides_and_seed_are_used_again(
    project: Path, recording_python: Path, record
) -> None:
    (project / "train.py").write_text(CONFIGURED)
    (project / "config.yaml").write_text("lr: 0.1\nsteps: 5\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "config")
    (project / "config.yaml").write_text("lr: 0.25   # uncommitted\nsteps: 5\n")
    run_id = record(recording_python, config_path="config.yaml", overrides=("steps=8",), seed=3)
    (project / "config.yaml").write_text("lr: 0.9\nsteps: 2\n")
    git(project, "commit", "-qam", "other config")

    result = reproduce(run_id, env="current", keep=True, **_quiet())
    assert result.verdict == "reproduced", result.as_dict()
    original = read_json(Store.open().resolve(run_id) / "run.json")
    again = read_json(result.run_dir / "run.json")
    assert again["config"] == original["config"] == {"lr": 0.25, "steps": 8, "seed": 3}
    assert again["config_hash"] == original["config_hash"]
    assert again["child_env"]["REPLICATOR_CONFIG"].startswith(str(result.kept[0]))
    assert next(c for c in result.checks if c.kind == "history").reproduced == "8 points"
    # --keep leaves the checkout registered; removing it is the user's call
    assert len(git(project, "worktree", "list").splitlines()) == 2


def test_run_started_with_plain_python_reproduces(
    project: Path, recording_python: Path, tmp_path: Path
) -> None:
    import os

    (project / "helper.py").write_text("SCALE = 3.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONHASHSEED")}
    subprocess.run([str(recording_python), "train.py"], cwd=project, env=env, check=True)
    (original,) = Store.open().records()
    assert original.meta["launcher"] == "python"
    result = reproduce(original.id, env="current", **_quiet())
    assert result.verdict == "reproduced", result.as_dict()
    assert read_json(result.run_dir / "run.json")["seed"] == original.seed


def test_stdlib_run_with_parsed_metrics_reproduces_with_venv_and_pip(
    project: Path, tmp_path: Path, record
) -> None:
    import sys

    from repro_helpers import find_uv

    # a stdlib-only command whose metrics are parsed from its output
    (project / "train.py").write_text(
        "import os, random\n"
        "random.seed(int(os.environ['REPLICATOR_SEED']))\n"
        "for step in range(5):\n"
        "    print(f'step {step} | loss {random.random():.6f}')\n"
    )
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([find_uv(), "venv", "-q", "--python", base, str(tmp_path / "bare")], check=True)
    run_id = record(
        tmp_path / "bare" / "bin" / "python",
        metric_pattern=r"step (?P<step>\d+) \| loss (?P<loss>[0-9.]+)",
    )
    stages: dict[str, str] = {}
    result = reproduce(run_id, env="fresh", use_uv=False, on_stage=stages.__setitem__, **_quiet())
    assert result.verdict == "reproduced", result.as_dict()
    assert stages["environment"].startswith("pip venv")
    assert {(c.kind, c.name, c.status) for c in result.checks} == {
        ("summary", "loss", "exact"),
        ("history", "loss", "exact"),
    }
