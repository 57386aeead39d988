"""Shared fixtures: real git repositories, a clean environment, the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the caller's replicator run, store, git identity or working directory."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("REPLICATOR_"):
            monkeypatch.delenv(name)
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    # `python` in child commands is this interpreter (the test venv)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.rstrip("\n")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real git repository with one commit, as the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("# project\n")
    (root / ".gitignore").write_text("*.log\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    monkeypatch.chdir(root)
    return root


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real `replicator` command in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "replicator", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The real `replicator` command started in the background (stdout and stderr together)."""
    return subprocess.Popen(
        [sys.executable, "-m", "replicator", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_files(
    paths: Path | list[Path], proc: subprocess.Popen[str], timeout: float = 60
) -> None:
    """Wait until every path exists; fail with the process's output if it ends first."""
    wanted = [paths] if isinstance(paths, Path) else list(paths)
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in wanted):
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {[p.name for p in wanted]}: {proc.communicate()[0]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {wanted}")
        time.sleep(0.005)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def experiment_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store on disk with three models x five seeds and a failed and a crashed run (see
    tests/report/report_fixtures.py), in REPLICATOR_STORE; the working directory is tmp_path.
    Shared by the store's frames tests and the report tests."""
    from .report.report_fixtures import make_experiment

    store = tmp_path / ".replicator"
    make_experiment(store)
    monkeypatch.setenv("REPLICATOR_STORE", str(store))
    monkeypatch.chdir(tmp_path)
    return store
