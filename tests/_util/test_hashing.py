"""One file hash for outputs.json (bare hex) and checkpoint manifests (``blake3:<hex>``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replicator._util.hashing import hash_buffer, hash_file
from replicator.record.outputs import OutputWatcher

# BLAKE3 test vectors (the reference implementation's digests of b"" and b"abc").
EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
ABC = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"


@pytest.mark.parametrize(("data", "digest"), [(b"", EMPTY), (b"abc", ABC)])
def test_both_forms_of_a_file_hash(tmp_path: Path, data: bytes, digest: str) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert hash_file(path) == digest
    assert hash_file(path, labelled=True) == f"blake3:{digest}"
    assert hash_buffer(data) == digest
    assert hash_buffer(bytearray(data), labelled=True) == f"blake3:{digest}"


def test_a_big_file_hashes_like_its_bytes(tmp_path: Path) -> None:
    blake3 = pytest.importorskip("blake3")
    data = bytes(range(256)) * (3 * 4096 + 17)  # several MiB: the multi-threaded path
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert hash_file(path) == blake3.blake3(data).hexdigest()


def test_outputs_json_records_the_bare_digest(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_bytes(b"abc")
    watcher = OutputWatcher(tmp_path, declared=["out.txt"])
    assert watcher.after()["files"] == [
        {"path": "out.txt", "size": 3, "blake3": ABC, "status": "declared"}
    ]


def test_a_checkpoint_manifest_records_the_labelled_digest(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    from replicator.checkpoints import CheckpointManager
    from replicator.checkpoints.file import hash_checkpoint

    manager = CheckpointManager(tmp_path / "ckpt", keep_last=1)
    manager.save({"a": 1}, step=1)
    manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
    entry = manifest["checkpoints"][-1]
    path = tmp_path / "ckpt" / entry["file"]
    # the hash written while streaming the file equals the one computed from the file later
    assert entry["hash"] == hash_checkpoint(path) == hash_file(path, labelled=True)
    assert entry["hash"] == "blake3:" + hash_file(path)
