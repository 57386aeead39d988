"""The interpreter a wrapped command really runs is the one whose environment is recorded.

A second venv (``venv2``, made with ``python -m venv --without-pip``: no packages at all) is run
through ``sh -c``, a shell script, a console script's shebang (as ``torchrun`` and ``accelerate``
are), ``env``/``nohup`` prefixes and ``uv run``; each real ``replicator run`` must record venv2's
interpreter and packages (none of replicator's own), and say which rule found it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from replicator.capture.interpreter import find_interpreter

from ..conftest import run_cli


@pytest.fixture(scope="module")
def venv2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = getattr(sys, "_base_executable", sys.executable)
    prefix = tmp_path_factory.mktemp("other") / "venv2"
    subprocess.run([base, "-m", "venv", "--without-pip", str(prefix)], check=True)
    return prefix


def _recorded(store: Path) -> dict:
    (run_dir,) = [p for p in (store / "runs").iterdir() if p.is_dir()]
    return json.loads((run_dir / "environment.json").read_text())


def _console_script(path: Path, python: Path) -> Path:
    path.write_text(f"#!{python}\nimport sys\nprint('console script ran', sys.prefix)\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(
    "kind", ["sh -c", "shell script", "console script", "env and nohup", "uv run"]
)
def test_run_records_the_interpreter_behind_a_wrapper(
    kind: str, venv2: Path, repo: Path, tmp_path: Path
) -> None:
    python2 = venv2 / "bin" / "python"
    (repo / "train.py").write_text("import sys\nprint('ran with', sys.executable)\n")
    env: dict[str, str] = {"REPLICATOR_STORE": str(tmp_path / "store")}
    if kind == "sh -c":
        command = ["sh", "-c", f"cd {repo} && {python2} train.py"]
    elif kind == "shell script":
        (repo / "train.sh").write_text(f'#!/bin/sh\n# train\nset -e\n{python2} train.py "$@"\n')
        command = ["bash", "train.sh"]
    elif kind == "console script":
        command = [str(_console_script(tmp_path / "launch-it", python2))]
    elif kind == "env and nohup":
        env["PATH"] = f"{venv2 / 'bin'}{os.pathsep}{os.environ['PATH']}"
        command = ["env", "A=1", "nohup", "python", "train.py"]
    else:
        uv = Path(sys.executable).parent / "uv"
        if not uv.exists():
            pytest.skip("uv is not installed in the test venv")
        (repo / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n')
        env["UV_PROJECT_ENVIRONMENT"] = str(venv2)
        # uv run is not executed here (it would sync the project); only what it would run
        found = find_interpreter([str(uv), "run", "train.py"], {**os.environ, **env}, cwd=repo)
        assert found is not None and found.path == str(python2.absolute())
        assert "uv run" in found.how
        return
    proc = run_cli("run", "--seed", "1", "--", *command, cwd=repo, env=env)
    assert proc.returncode == 0, proc.stderr
    python = _recorded(tmp_path / "store")["python"]
    assert (
        python["executable"] == str(python2.absolute())
        or Path(python["executable"]).resolve() == python2.resolve()
    )
    assert python["prefix"] == str(venv2), python
    assert python["found_by"], python
    packages = _recorded(tmp_path / "store")["packages"]
    assert "replicator" not in packages and "click" not in packages, sorted(packages)
    shown = run_cli("show", "last", cwd=repo, env=env)
    assert f"interpreter found by:  {python['found_by']}" in shown.stdout, shown.stdout


def test_a_command_without_python_says_whose_interpreter_was_recorded(
    repo: Path, tmp_path: Path
) -> None:
    proc = run_cli(
        "run", "--seed", "1", "--", "sh", "-c", "echo hi", cwd=repo,
        env={"REPLICATOR_STORE": str(tmp_path / "store")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    python = _recorded(tmp_path / "store")["python"]
    assert "no Python" in python["found_by"]


def test_console_script_shebangs_of_pip_on_long_paths(tmp_path: Path, venv2: Path) -> None:
    python2 = venv2 / "bin" / "python"
    script = tmp_path / "torchrun"
    script.write_text(f"#!/bin/sh\n'''exec' '{python2}' \"$0\" \"$@\"\n' '''\nimport sys\n")
    script.chmod(0o755)
    found = find_interpreter([str(script), "--nproc_per_node", "2", "train.py"], os.environ)
    assert found is not None and found.path == str(python2.absolute())
