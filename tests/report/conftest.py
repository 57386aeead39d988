"""Fixtures for report and analysis tests (helpers live in report_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import make_experiment


@pytest.fixture
def experiment_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = tmp_path / ".replicator"
    make_experiment(store)
    monkeypatch.setenv("REPLICATOR_STORE", str(store))
    monkeypatch.chdir(tmp_path)
    return store
