"""Bit-exact resume on a GPU (issue 17): a CUDA training with dropout and a shuffling DataLoader,
killed with SIGKILL at a random step and resumed with ``replicator run --resume``, ends with
every parameter bit for bit equal to an uninterrupted run's.

The same test runs on the CPU (``device="cpu"``), so its logic is proven on any machine; the
CUDA case is marked ``gpu`` and skips, saying why, where torch sees no CUDA device.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from test_ckpt_resume import _kill_and_resume, _Reference  # tests/checkpoints has no package

STEPS = 24
SCRIPT = "ckpt_train_device.py"


def _device(name: str) -> str:
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device: torch.cuda.is_available() is False")
    return name


def _checkpoint_devices(run_dir: Path) -> tuple[set[str], int]:
    """The devices the latest checkpoint's tensors were saved from, and its CUDA RNG count."""
    manifest = json.loads((run_dir / "checkpoints" / "manifest.json").read_text())
    blob = (run_dir / "checkpoints" / manifest["latest"]).read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    meta = json.loads(json.loads(blob[8 : 8 + n])["__metadata__"]["replicator"])
    devices = {t["device"] for t in meta["state"]["model"].values()}
    return devices, len(meta["rng"].get("torch", {}).get("cuda", []))


@pytest.mark.slow
@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)], ids=["cpu", "cuda"]
)
def test_training_killed_and_resumed_on_the_device_is_bitwise_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    import torch
    from safetensors.torch import load_file

    monkeypatch.setenv("TRAIN_DEVICE", _device(device))  # both runs inherit it
    reference = _Reference(tmp_path, SCRIPT, STEPS)
    killed = _kill_and_resume(tmp_path, reference, SCRIPT, STEPS, "child")

    expected = "cuda:0" if device == "cuda" else "cpu"
    assert (killed / "marks" / "device").read_text() == expected  # the resume ran there too
    (run_dir,) = (killed / "store" / "runs").iterdir()
    devices, cuda_streams = _checkpoint_devices(run_dir)
    assert devices == {expected}
    assert (cuda_streams >= 1) == (device == "cuda")  # the dropout stream was saved
    want = load_file(str(reference.done() / "final.out"))
    got = load_file(str(killed / "final.out"))
    assert want.keys() == got.keys() and want
    for name in want:
        assert want[name].dtype == got[name].dtype and want[name].shape == got[name].shape
        same = torch.equal(want[name].view(torch.uint8), got[name].view(torch.uint8))
        assert same, f"{name} differs after the resume on {device}"
