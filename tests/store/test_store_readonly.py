"""A read-only store (issue 12, item 5): reading keeps working without touching the index;
writing fails with the fault named, the path and the fix, never "a bug in replicator".

The store lies on a real read-only filesystem (a tmpfs mounted, filled, then remounted
read-only): tests run as root, where permission bits alone stop nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from replicator.store import Store

from ..conftest import run_cli

SCRIPT = (
    "import replicator\n"
    "with replicator.start() as run:\n"
    "    run.log({'loss': 0.5}, step=0)\n"
    "    run.summary['acc'] = 0.5\n"
)
FIX = "Use a store you can write (REPLICATOR_STORE=PATH or 'store: PATH' in replicator.yaml)"


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def readonly_store(repo: Path, tmp_path: Path) -> Iterator[Path]:
    """Two real runs, their store copied onto a tmpfs that is then remounted read-only
    (without the index, so that nothing could have been cached); the repo uses it."""
    (repo / "train.py").write_text(SCRIPT)
    for _ in range(2):
        proc = run_cli("run", "--", sys.executable, "train.py", cwd=repo)
        assert proc.returncode == 0, proc.stderr
    mountpoint = tmp_path / "readonly"
    mountpoint.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mountpoint))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for a read-only store: {mounted.stderr.strip()}")
    try:
        store = mountpoint / ".replicator"
        shutil.copytree(repo / ".replicator", store, ignore=shutil.ignore_patterns("index*"))
        remounted = _mount("-o", "remount,ro", str(mountpoint))
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount the tmpfs read-only: {remounted.stderr.strip()}")
        (repo / "replicator.yaml").write_text(f"store: {store}\n")
        yield store
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True)


def test_reading_a_read_only_store_keeps_working(repo: Path, readonly_store: Path) -> None:
    runs = sorted(p.name for p in (readonly_store / "runs").iterdir())
    proc = run_cli("ls", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert all(r in proc.stdout for r in runs) and proc.stderr == ""
    proc = run_cli("ls", "--json", cwd=repo)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    proc = run_cli("show", "last", cwd=repo)
    assert proc.returncode == 0 and f"Run {runs[-1]}" in proc.stdout, proc.stderr
    report = repo / "report.html"
    proc = run_cli("report", "default", "--metric", "acc", "-o", str(report), cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert report.is_file()
    store = Store(readonly_store)
    assert [r.id for r in store.records()] == runs and store.problems == []
    assert not store.index_path.exists()


def test_run_into_a_read_only_store_names_the_fault(repo: Path, readonly_store: Path) -> None:
    for args in (["run"], ["run", "--seeds", "2"]):
        proc = run_cli(*args, "--", sys.executable, "train.py", cwd=repo)
        assert proc.returncode == 1
        assert proc.stderr.startswith(
            f"Error: cannot write the store at {readonly_store}: read-only file system. {FIX}"
        ), proc.stderr
        assert "bug in replicator" not in proc.stderr


def test_index_rebuild_on_a_read_only_store_names_the_fault(
    repo: Path, readonly_store: Path
) -> None:
    proc = run_cli("index", "rebuild", cwd=repo)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        f"Error: cannot rebuild the index at {readonly_store / 'index.sqlite'}: "
        f"read-only file system. {FIX}"
    ), proc.stderr


def test_start_raises_a_store_error_naming_the_fault(repo: Path, readonly_store: Path) -> None:
    probe = (
        "import replicator\n"
        "from replicator.errors import StoreError\n"
        "try:\n"
        "    replicator.start()\n"
        "except StoreError as exc:\n"
        "    print('StoreError:', exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(
        f"StoreError: cannot write the store at {readonly_store}: read-only file system. {FIX}"
    ), proc.stdout


def test_an_os_error_reaching_the_cli_is_named_not_a_bug(repo: Path, readonly_store: Path) -> None:
    """A write outside the store (here the report's output) that fails on the machine."""
    target = readonly_store.parent / "report.html"
    proc = run_cli("report", "default", "--metric", "acc", "-o", str(target), cwd=repo)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"Error: cannot access {target.parent}/"), proc.stderr
    assert "read-only file system" in proc.stderr
    assert "bug in replicator" not in proc.stderr
