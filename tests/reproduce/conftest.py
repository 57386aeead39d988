"""Fixtures for reproduce tests: a small recording venv (numpy + replicator) and a real project."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from repro_helpers import SOURCE, TRAIN, git, make_venv


@pytest.fixture(scope="session")
def recording_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SOURCE / "pyproject.toml").is_file():
        pytest.skip("replicator is not installed from a source checkout")
    return make_venv(tmp_path_factory.mktemp("recording") / "venv")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repo with train.py committed; store in REPLICATOR_STORE; cwd is the repo."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("out/\ndata/\n")
    (root / "train.py").write_text(TRAIN)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    monkeypatch.setenv("REPLICATOR_STORE", str(tmp_path / "store"))
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def record() -> Callable[..., str]:
    """Record ``python train.py`` with ``python`` via launch(); returns the run id."""
    import io

    from replicator.record.launch import RunSpec, launch
    from replicator.store import Store

    def _record(python: Path, *args: str, seed: int = 7, **spec: object) -> str:
        results = launch(
            RunSpec(command=(str(python), "train.py", *args), seed=seed, **spec),  # type: ignore[arg-type]
            store=Store.open(),
            stdout=io.BytesIO(),
            stderr=io.BytesIO(),
        )
        assert results[0].status == "completed", (results[0].dir / "stderr.log").read_text()
        return results[0].run_id

    return _record
