"""Bad input to `replicator sweep`: refused before anything is submitted, naming the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import run_cli
from .core_helpers import make_project


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "optim.lr=0.1,0.01"], "Override 'optim.lr=0.1': config has no key 'optim'"),
        (["--set", "x=range(1,"], "Sweep override 'x=range(1,' cannot be parsed"),
        (["--set", "x=range(1,5,step=0)"], "range() step must not be 0"),
        (["--set", "x=range(5,1)"], "Sweep override 'x=range(5,1)' gives no values"),
        (["--set", "x=1,2", "--set", "model=choice()"], "Sweep override 'model=choice()'"),
        (["--sample", "x=loguniform(0,1)", "--trials", "2"], "loguniform() needs LOW above 0"),
        (["--sample", "x=uniform(0,1)", "--trials", "0"], "--trials must be at least 1"),
        (["--optuna", "--sample", "x=uniform(0,1)", "--trials", "2"], "--optuna needs --metric"),
        (["--set", "x=1,2", "--seeds", "0"], "--seeds must be at least 1"),
        (["--set", "x=1,2", "--", "python", "train.py", "{config.nope}"], "{config.nope}"),
        (["--set", "x=1,2", "-j", "0"], "-j/--jobs must be at least 1"),
        (["--set", "x=1,2", "--executor", "nope"], "'nope' is not one of"),
    ],
)
def test_bad_sweep_is_refused_before_any_run_exists(
    repo: Path, args: list[str], message: str
) -> None:
    store = make_project(repo)
    if "--" not in args:
        args = [*args, "--", "python", "train.py"]
    result = run_cli("sweep", "-c", "cfg.yaml", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (store / "runs").exists()
    assert not list(store.glob("experiments/*/sweeps/*"))


def test_too_many_jobs_need_confirmation(repo: Path) -> None:
    store = make_project(repo)
    (repo / "replicator.yaml").write_text("sweep_max_jobs: 3\n")
    args = ["sweep", "-c", "cfg.yaml", "x=1,2", "model=a,b", "--dry-run"]
    refused = run_cli(*args, "--", "python", "train.py")  # stdin is not a terminal: no asking
    assert refused.returncode == 2
    assert "The sweep has 4 jobs, more than sweep_max_jobs (3). Confirm with --yes" in (
        refused.stderr
    )
    confirmed = run_cli(*args, "--yes", "--", "python", "train.py")
    assert confirmed.returncode == 0, confirmed.stderr
    assert len(confirmed.stdout.splitlines()) == 4
    assert not (store / "runs").exists()

    (repo / "replicator.yaml").write_text("sweep_max_jobs: many\n")
    bad = run_cli(*args, "--", "python", "train.py")
    assert bad.returncode == 2
    assert "Setting 'sweep_max_jobs' in" in bad.stderr and "'many'" in bad.stderr


def test_default_limit_is_a_thousand_jobs(repo: Path) -> None:
    make_project(repo)
    result = run_cli("sweep", "x=range(0,1001)", "--dry-run", "--", "python", "train.py")
    assert result.returncode == 2
    assert "1001 jobs, more than sweep_max_jobs (1000)" in result.stderr


@pytest.mark.parametrize(
    ("args", "module", "extra"),
    [
        (["--optuna", "--metric", "loss", "--sample", "x=uniform(0,1)", "--trials", "2"],
         "optuna", "optuna"),
        (["--set", "x=1,2", "--executor", "ray"], "ray", "ray"),
        (["--set", "x=1,2", "--executor", "slurm"], "submitit", "slurm"),
    ],
)  # fmt: skip
def test_missing_executor_package_names_the_extra(
    repo: Path, tmp_path: Path, args: list[str], module: str, extra: str
) -> None:
    store = make_project(repo)
    # a package that is not installed: its import fails as a missing one does
    blocked = tmp_path / "blocked"
    (blocked / module).mkdir(parents=True)
    (blocked / module / "__init__.py").write_text(
        f"raise ModuleNotFoundError({f'No module named {module!r}'!r}, name={module!r})\n"
    )
    result = run_cli(
        "sweep", "-c", "cfg.yaml", *args, "--", "python", "train.py",
        env={"PYTHONPATH": str(blocked)},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert f"pip install 'replicator[{extra}]'" in line
    assert not (store / "runs").exists()
    assert not list(store.glob("experiments/*/sweeps/*"))
