"""The output copy when the store's disk fails: a real 2 MiB tmpfs holds the store and a real
child prints 5 MB (issue 12 item 1: the copying thread died on ENOSPC and the child blocked on
its pipe until killed)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import git, run_cli

# 50,000 numbered lines of 100 bytes, a line on stderr, exit 0.
LOUD = r"""
import sys
for i in range(50_000):
    sys.stdout.write(f"{i:07d} " + "x" * 91 + "\n")
sys.stderr.write("finished\n")
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted after the test."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip()
        print(f"cannot mount a tmpfs here ({reason}): the disk-full test needs root")
        pytest.skip(f"mounting a tmpfs is not permitted: {reason}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_fails_the_run_and_the_child_runs_to_its_end(
    repo: Path, small_disk: Path
) -> None:
    (repo / "loud.py").write_text(LOUD)
    git(repo, "add", "loud.py")
    git(repo, "commit", "-q", "-m", "loud")
    store = small_disk / "store"
    proc = run_cli(
        "run", "--", "python", "loud.py", env={"REPLICATOR_STORE": str(store)}, timeout=60
    )

    # the terminal got every line, whatever the disk did
    expected = "".join(f"{i:07d} " + "x" * 91 + "\n" for i in range(50_000))
    assert proc.stdout == expected
    assert "finished" in proc.stderr
    assert "bug in replicator" not in proc.stderr
    # the command succeeded, its record did not: replicator says so, and why, and exits 1
    assert proc.returncode == 1
    assert "failed (exit code 0): disk full at " in proc.stderr

    (run_dir,) = (store / "runs").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "failed", meta
    assert meta["exit_code"] == 0
    assert f"disk full at {run_dir / 'stdout.log'}" in meta["error"]
    # what was recorded is whole lines, the first ones, in order
    log = (run_dir / "stdout.log").read_text()
    assert log and log.endswith("\n")
    assert expected.startswith(log)
    assert (run_dir / "code.json").exists() and (run_dir / "status.jsonl").exists()
    assert not (run_dir / ".reserve").exists()
