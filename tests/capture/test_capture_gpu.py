"""Hardware and GPU facts of a real `replicator run` agree with what torch sees in the script
(issue 17): each device the script computes on is in hardware.json with the same name, compute
capability and memory, and environment.json names the torch build (version, CUDA) it imported.

The same test runs with ``device="cpu"`` on any machine (CPU facts, torch build, no device
used); the CUDA case is marked ``gpu`` and skips, saying why, where torch sees no CUDA device.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import run_cli

FACTS = r"""
import json, os, sys
import torch

device = torch.device(sys.argv[1])
x = torch.ones(64, 64, device=device)
(x @ x).sum().item()  # computed there
used = []
if device.type == "cuda":
    i = device.index or 0
    props = torch.cuda.get_device_properties(i)
    used.append({
        "name": torch.cuda.get_device_name(i),
        "compute_capability": f"{props.major}.{props.minor}",
        "memory_mib": props.total_memory / 2**20,
    })
json.dump({
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cpu_count": os.cpu_count(),
    "affinity": len(os.sched_getaffinity(0)),
    "capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch picked
    "used": used,
}, open(os.environ["FACTS_OUT"], "w"))
"""


def _device(name: str) -> str:
    torch = pytest.importorskip("torch")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device: torch.cuda.is_available() is False")
    return name


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)], ids=["cpu", "cuda"]
)
def test_recorded_hardware_matches_what_torch_sees_in_the_run(
    repo: Path, tmp_path: Path, device: str
) -> None:
    (repo / "facts.py").write_text(FACTS)
    out = tmp_path / "facts.json"
    proc = run_cli(
        "run", "--", "python", "facts.py", _device(device), cwd=repo, env={"FACTS_OUT": str(out)}
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(out.read_text())
    (run_dir,) = (repo / ".replicator" / "runs").iterdir()
    hw = json.loads((run_dir / "hardware.json").read_text())
    env = json.loads((run_dir / "environment.json").read_text())

    assert env["torch"]["version"] == seen["torch"]
    assert env["torch"]["cuda"] == seen["cuda"]
    assert hw["cpu"]["logical_cores"] == seen["cpu_count"]
    assert hw["cpu"]["affinity_cores"] == seen["affinity"]
    # the instruction set torch's CPU kernels use is among the recorded flags
    needed = {"AVX512": "avx512f", "AVX2": "avx2"}.get(seen["capability"])
    assert needed is None or needed in hw["cpu"]["flags"], seen["capability"]
    gpu = hw["gpu"]
    assert gpu["count"] == len(gpu["devices"])
    for used in seen["used"]:
        matching = [
            d
            for d in gpu["devices"]
            if d["name"] == used["name"]
            and d["compute_capability"] == used["compute_capability"]
            and abs(d["memory_mib"] - used["memory_mib"]) <= 0.02 * used["memory_mib"]
        ]
        assert matching, f"{used} is not among the recorded GPUs {gpu['devices']}"
    if device == "cuda":
        assert seen["used"] and gpu["driver"]
        assert all(d["driver"] == gpu["driver"] and d["uuid"] for d in gpu["devices"])
        if "driver_banner" in gpu:  # /proc/driver/nvidia/version names the same driver
            assert gpu["driver"] in gpu["driver_banner"]
    else:
        assert seen["used"] == []
