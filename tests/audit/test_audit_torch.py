"""torch in the audit: deterministic mode reports each op without a deterministic kernel with
the script's file and line (CPU: put_), and on CUDA the atomics-based kernels, cuDNN benchmark
and the cuBLAS workspace are named (gpu: skipped without a CUDA device)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from replicator.audit import audit, format_audit

PLANTED = Path(__file__).with_name("planted")
PATTERN = r"step (?P<step>\d+) \| \w+ (?P<value>\S+)"


def _project(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copyfile(PLANTED / f"{name}.py", folder / f"{name}.py")
    return folder


def _torch_cuda() -> bool:
    torch = pytest.importorskip("torch")
    return bool(torch.cuda.is_available())


def test_deterministic_mode_reports_the_op_with_file_and_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    folder = _project(tmp_path, "torch_put")

    report = audit(
        [sys.executable, "torch_put.py", "cpu"],
        metric_pattern=PATTERN,
        cwd=folder,
        store=tmp_path / "store",
        jobs=2,
        factors=["deterministic"],  # 3 runs instead of 7: each imports torch
    )

    text = "\n".join(format_audit(report))
    [op] = [f for f in report.findings if f.code == "nondeterministic-op"]
    assert (op.path, op.line) == ("torch_put.py", 9), text
    assert "put_" in op.message
    # on the CPU put_ gives the same result either way: reported, not confirmed
    assert op.confirmed is False, text
    [det] = [f for f in report.factors if f.name == "deterministic"]
    assert det.status == "unchanged"
    assert "torch reports no deterministic kernel for put_ at" in det.note
    assert {f.name: f.status for f in report.factors}["hashseed"] == "not tested"
    assert report.passed, text


@pytest.mark.gpu
def test_cuda_atomics_and_cudnn_benchmark_are_named(tmp_path: Path) -> None:
    if not _torch_cuda():
        pytest.skip("no CUDA device: torch.cuda.is_available() is False")
    folder = _project(tmp_path, "gpu_atomics")

    report = audit(
        [sys.executable, "gpu_atomics.py"],
        metric_pattern=PATTERN,
        cwd=folder,
        store=tmp_path / "store",
        jobs=2,
    )

    text = "\n".join(format_audit(report))
    found = {(f.code, f.line): f for f in report.findings}
    assert ("cudnn-benchmark", 6) in found, text
    assert ("cuda-atomic-op", 11) in found, text
    assert ("cuda-atomic-op", 12) in found, text  # histc
    # torch itself reports histc on CUDA (index_add_ has a deterministic kernel it switches to)
    ops = [f for f in report.findings if f.code == "nondeterministic-op"]
    assert [(f.path, f.line) for f in ops] == [("gpu_atomics.py", 12)], text
    assert "histc" in ops[0].message
    # float atomics add in another order each run: the deterministic kernels change the result
    assert not report.passed, text
    assert "deterministic" in report.sources, text
    assert found[("cuda-atomic-op", 11)].confirmed is True, text
