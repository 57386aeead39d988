"""Hardware capture: CPU model and instruction-set flags, memory, GPUs and the NVIDIA driver.

Only cheap sources: /proc/cpuinfo, /proc/meminfo, /proc/driver/nvidia/version and one
``nvidia-smi --query-gpu`` call when the tool exists (~25 ms). BLAS threading is read with
threadpoolctl only when numpy is already imported, so capture never loads numpy itself.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Any

__all__ = ["NUMERIC_CPU_FLAGS", "capture_hardware"]

# Instruction sets that change which BLAS kernels run and therefore floating-point results.
NUMERIC_CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512dq",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
)


def _cpu() -> dict[str, Any]:
    facts: dict[str, Any] = {"machine": platform.machine(), "logical_cores": os.cpu_count()}
    try:
        facts["affinity_cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        facts["model"] = platform.processor() or None
        return facts
    flags: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "cpu model") and "model" not in facts:
            facts["model"] = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value.split()
        elif key == "vendor_id" and "vendor" not in facts:
            facts["vendor"] = value.strip()
    facts["flags"] = sorted(flags)
    facts["numeric_flags"] = [f for f in NUMERIC_CPU_FLAGS if f in set(flags)]
    return facts


def _memory() -> dict[str, Any]:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return {"total_bytes": int(line.split()[1]) * 1024}
    except (OSError, ValueError):
        pass
    return {}


def _gpus() -> dict[str, Any]:
    facts: dict[str, Any] = {"count": 0, "devices": []}
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as f:
            facts["driver_banner"] = f.readline().strip()
    except OSError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return facts
    query = "name,driver_version,compute_cap,memory.total,uuid"
    try:
        proc = subprocess.run(
            [smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        facts["error"] = str(exc)
        return facts
    if proc.returncode != 0:
        facts["error"] = proc.stderr.strip()[-300:]
        return facts
    for line in proc.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5:
            continue
        name, driver, cap, mem, uuid = parts[:5]
        facts["devices"].append(
            {
                "name": name,
                "driver": driver,
                "compute_capability": cap,
                "memory_mib": int(mem) if mem.isdigit() else mem,
                "uuid": uuid,
            }
        )
    facts["count"] = len(facts["devices"])
    if facts["devices"]:
        facts["driver"] = facts["devices"][0]["driver"]
    return facts


def _blas() -> list[dict[str, Any]] | None:
    if "numpy" not in sys.modules:
        return None
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [
        {
            k: v
            for k, v in info.items()
            if k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")
        }
        for info in threadpool_info()
    ]


def capture_hardware() -> dict[str, Any]:
    """CPU, memory, GPUs and (when numpy is loaded) BLAS thread pools of this machine."""
    record: dict[str, Any] = {
        "host": platform.node(),
        "cpu": _cpu(),
        "memory": _memory(),
        "gpu": _gpus(),
    }
    blas = _blas()
    if blas is not None:
        record["blas"] = blas
    return record
