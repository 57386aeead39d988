"""``replicator diff``: what differs between two runs, most likely cause of different numbers first.

Sections in rank order: Python and packages (numeric libraries first), CUDA/torch build,
hardware (CPU model and instruction sets, GPUs, driver), determinism and thread variables,
seeds, config, data, code, and last the final metrics that differ as a consequence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import flatten
from .store import RunRecord

__all__ = ["Difference", "RunDiff", "diff_runs", "read_part"]

NUMERIC_PACKAGES = (
    "numpy",
    "scipy",
    "torch",
    "jax",
    "jaxlib",
    "tensorflow",
    "scikit-learn",
    "pandas",
    "numba",
    "cupy",
    "triton",
    "mkl",
    "openblas",
    "intel-openmp",
)
SECTIONS = (
    "python",
    "packages",
    "cuda",
    "hardware",
    "environment",
    "seeds",
    "config",
    "data",
    "code",
    "metrics",
)


@dataclass(frozen=True)
class Difference:
    """One difference: ``section``, ``key``, the two values and a rank (lower matters more)."""

    section: str
    key: str
    a: Any
    b: Any
    rank: int


@dataclass(frozen=True)
class RunDiff:
    a: str
    b: str
    differences: tuple[Difference, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "differences": [asdict(d) for d in self.differences]}


def read_part(run_dir: Path, name: str) -> dict[str, Any]:
    """A run's JSON part (environment.json, hardware.json, code.json...), {} when absent."""
    try:
        with open(run_dir / name, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _package_rank(name: str) -> int:
    if name in NUMERIC_PACKAGES or name.startswith(("nvidia-", "torch")):
        return 0
    return 1


def diff_runs(a: RunRecord, b: RunRecord) -> RunDiff:
    """Every difference between two runs' records, ranked."""
    out: list[Difference] = []

    def add(section: str, key: str, va: Any, vb: Any, sub: int = 0) -> None:
        if va != vb:
            out.append(Difference(section, key, va, vb, SECTIONS.index(section) * 10 + sub))

    env_a, env_b = read_part(a.dir, "environment.json"), read_part(b.dir, "environment.json")
    py_a, py_b = env_a.get("python", {}), env_b.get("python", {})
    add("python", "version", _short(py_a.get("version")), _short(py_b.get("version")))
    add("python", "implementation", py_a.get("implementation"), py_b.get("implementation"))
    add(
        "python",
        "str hash seed",
        a.meta.get("python_hash_seed"),
        b.meta.get("python_hash_seed"),
    )
    pk_a, pk_b = env_a.get("packages", {}), env_b.get("packages", {})
    for name in sorted(set(pk_a) | set(pk_b), key=lambda n: (_package_rank(n), n)):
        add("packages", name, _pkg(pk_a.get(name)), _pkg(pk_b.get(name)), _package_rank(name))
    t_a, t_b = env_a.get("torch") or {}, env_b.get("torch") or {}
    for key in ("version", "cuda", "hip"):
        add("cuda", f"torch {key}", t_a.get(key), t_b.get(key))
    hw_a, hw_b = read_part(a.dir, "hardware.json"), read_part(b.dir, "hardware.json")
    gpu_a, gpu_b = hw_a.get("gpu", {}), hw_b.get("gpu", {})
    add("cuda", "driver", gpu_a.get("driver"), gpu_b.get("driver"))
    add(
        "hardware",
        "GPUs",
        [d.get("name") for d in gpu_a.get("devices", [])],
        [d.get("name") for d in gpu_b.get("devices", [])],
    )
    cpu_a, cpu_b = hw_a.get("cpu", {}), hw_b.get("cpu", {})
    add("hardware", "CPU model", cpu_a.get("model"), cpu_b.get("model"))
    add(
        "hardware",
        "CPU numeric instruction sets",
        cpu_a.get("numeric_flags"),
        cpu_b.get("numeric_flags"),
    )
    add("hardware", "logical cores", cpu_a.get("logical_cores"), cpu_b.get("logical_cores"), 1)
    add("hardware", "BLAS", hw_a.get("blas"), hw_b.get("blas"), 1)
    add("hardware", "machine", cpu_a.get("machine"), cpu_b.get("machine"))
    add(
        "hardware",
        "OS",
        (env_a.get("os") or {}).get("release"),
        (env_b.get("os") or {}).get("release"),
        2,
    )
    add(
        "hardware",
        "libc",
        (env_a.get("os") or {}).get("libc"),
        (env_b.get("os") or {}).get("libc"),
        1,
    )
    rel_a, rel_b = env_a.get("relevant_env", {}), env_b.get("relevant_env", {})
    for key in sorted(set(rel_a) | set(rel_b)):
        if key == "PYTHONHASHSEED":
            continue  # follows the seed, shown there
        add("environment", key, rel_a.get(key), rel_b.get(key))
    add("seeds", "seed", a.seed, b.seed)
    add("seeds", "deterministic", a.meta.get("deterministic"), b.meta.get("deterministic"))
    cfg_a, cfg_b = flatten(a.config), flatten(b.config)
    for key in sorted(set(cfg_a) | set(cfg_b)):
        if key == "seed":
            continue
        add("config", key, cfg_a.get(key, "<absent>"), cfg_b.get(key, "<absent>"))
    data_a, data_b = a.meta.get("data") or {}, b.meta.get("data") or {}
    if data_a or data_b:
        from .data import diff_recorded

        store_root = a.dir.parent.parent  # runs/ID -> the store
        for name, change in diff_recorded(data_a, data_b, store=store_root).items():
            if change.status != "same":
                add("data", change.summary(), _digest(change.a), _digest(change.b))
    code_a, code_b = read_part(a.dir, "code.json"), read_part(b.dir, "code.json")
    add(
        "code",
        "working tree (snapshot tree)",
        code_a.get("snapshot_tree"),
        code_b.get("snapshot_tree"),
    )
    add("code", "commit", code_a.get("commit"), code_b.get("commit"), 1)
    add("code", "dirty", code_a.get("dirty"), code_b.get("dirty"), 1)
    add("code", "branch", code_a.get("branch"), code_b.get("branch"), 2)
    add("code", "command", a.meta.get("command"), b.meta.get("command"), 1)
    for key in sorted(set(a.summary) | set(b.summary)):
        add("metrics", key, a.summary.get(key, "<absent>"), b.summary.get(key, "<absent>"))
    out.sort(key=lambda d: d.rank)
    return RunDiff(a=a.id, b=b.id, differences=tuple(out))


def _digest(record: Mapping[str, Any] | None) -> str | None:
    if not record:
        return None
    return f"{record.get('algo')}:{str(record.get('digest'))[:12]}"


def _short(version: Any) -> Any:
    return version.split()[0] if isinstance(version, str) else version


def _pkg(info: Mapping[str, Any] | None) -> str | None:
    if not info:
        return None
    origin = info.get("origin", "index")
    text = str(info.get("version"))
    if origin == "editable":
        git = info.get("git") or {}
        commit = (git.get("commit") or "")[:10]
        text += f" (editable {info.get('path')}{' @' + commit if commit else ''}{' dirty' if git.get('dirty') else ''})"
    elif origin == "vcs":
        text += f" ({info.get('vcs')} {str(info.get('commit'))[:10]})"
    elif origin in ("local", "archive"):
        text += f" ({origin} {info.get('path') or info.get('url')})"
    return text
