"""The atomic-write helper: the result's mode follows the umask, which nothing changes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from replicator._util.io import atomic_write, replacing


@pytest.fixture
def umask_027() -> Iterator[int]:
    previous = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gets_the_mode_of_the_umask_in_force(tmp_path: Path, umask_027: int) -> None:
    # The umask was changed after replicator._util.io was imported: the write must follow it.
    path = atomic_write(tmp_path / "f.json", "{}")
    assert _mode(path) == 0o666 & ~umask_027
    assert path.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp file left


def test_files_other_threads_create_meanwhile_keep_the_umask_mode(
    tmp_path: Path, umask_027: int
) -> None:
    created: list[Path] = []
    stop = threading.Event()

    def create_files() -> None:
        while not stop.is_set():
            path = tmp_path / f"other-{len(created)}"
            path.touch()
            created.append(path)

    creator = threading.Thread(target=create_files)
    creator.start()
    try:
        for i in range(300):
            atomic_write(tmp_path / f"atomic-{i % 3}.json", f'{{"i": {i}}}', fsync=False)
    finally:
        stop.set()
        creator.join()
    assert created
    assert {_mode(p) for p in created} == {0o666 & ~umask_027}
    assert {_mode(tmp_path / f"atomic-{i}.json") for i in range(3)} == {0o666 & ~umask_027}


def test_importing_and_writing_never_set_the_umask(tmp_path: Path) -> None:
    # os.umask can only be read by setting it, which changes it for every thread for a moment.
    script = (
        "import os, sys\n"
        "calls = []\n"
        "real = os.umask\n"
        "os.umask = lambda mask: calls.append(mask) or real(mask)\n"
        "import replicator\n"
        "from replicator._util.io import atomic_write, atomic_write_json\n"
        "atomic_write(sys.argv[1] + '/a', 'x')\n"
        "atomic_write_json(sys.argv[1] + '/b.json', {'a': 1})\n"
        "print(calls)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_replacing_renames_on_success_and_cleans_up_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer failed"), replacing(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]
    with replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".ckpt.bin.")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]
