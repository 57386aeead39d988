"""``replicator env diff`` and ``env check``: environment differences ranked by how likely they
change numbers.

:func:`replicator.compare.runs.diff_runs` shows its environment part in these ranks too:

1. packages missing, or installed from another origin or source commit
2. Python minor version (or implementation)
3. numpy/scipy/torch/jax... versions, CUDA/HIP builds and build labels
4. BLAS, CPU model and instruction sets, thread counts
5. GPU model and driver
6. variables that change numeric and ML libraries (``CUBLAS_WORKSPACE_CONFIG``, TF32 switches,
   ``TORCH_*``, ``TF_*``, ``XLA_*``, ``JAX_*``, ``PYTHON*``, ...)
7. the rest (other package versions, OS, installers, paths, other variables the user set)

``PYTHONHASHSEED`` is left out: ``replicator run`` sets it from the seed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._protocol import CHILD_VARIABLES
from ..capture.environment import THREAD_ENV, TOOLING, is_library_variable, recorded_variables
from ..store import read_part

__all__ = [
    "RANKS",
    "EnvDiff",
    "EnvDifference",
    "check_environment",
    "diff_environments",
    "diff_run_environments",
    "format_env_diff",
]

RANKS = {
    1: "packages missing or from another origin",
    2: "Python minor version",
    3: "numeric libraries, CUDA and build labels",
    4: "BLAS, CPU instruction sets, threads",
    5: "GPU model and driver",
    6: "variables of numeric and ML libraries",
    7: "other",
}
"""Rank -> what differs, 1 (most likely to change numbers) to 7; the order of every environment diff."""
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


def _package_rank(name: str) -> int:
    if name in NUMERIC_PACKAGES or name.startswith(("nvidia-", "torch")):
        return 0
    return 1


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


THREAD_VARS = frozenset(THREAD_ENV)
# Set by `replicator run` for each run (the seed, the run's folder): never a difference.
IGNORED_VARS = frozenset({"PYTHONHASHSEED"} | {v.name for v in CHILD_VARIABLES})


def _variable_rank(key: str) -> int:
    if key in THREAD_VARS:
        return 4
    return 6 if is_library_variable(key) else 7


@dataclass(frozen=True)
class EnvDifference:
    """One difference: its rank (1 matters most), what it is, and the two values."""

    rank: int
    key: str
    a: Any
    b: Any
    note: str = ""

    @property
    def category(self) -> str:
        return RANKS[self.rank]


@dataclass(frozen=True)
class EnvDiff:
    """Ranked differences between environment ``a`` (usually the recorded one) and ``b``."""

    a: str
    b: str
    differences: tuple[EnvDifference, ...]

    def within(self, max_rank: int) -> tuple[EnvDifference, ...]:
        """The differences of rank ``max_rank`` or more important."""
        return tuple(d for d in self.differences if d.rank <= max_rank)

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "differences": [{**asdict(d), "category": d.category} for d in self.differences],
        }


def _source_id(info: Mapping[str, Any], *, use_tree: bool = True) -> Any:
    """What identifies an editable or VCS package's source: its commit, or its working tree."""
    if info.get("origin") == "vcs":
        return info.get("commit")
    git = info.get("git") or {}
    if not git:
        return None
    if git.get("dirty"):
        # Content, not commit ids: the same working tree gives the same tree id anywhere. When
        # one side has no tree id recorded, only the commits can be compared.
        tree = git.get("snapshot_tree") if use_tree else None
        return tree or f"{git.get('commit')} with unrecorded changes"
    return git.get("commit")


def _packages(out: list[EnvDifference], pa: Mapping[str, Any], pb: Mapping[str, Any]) -> None:
    extra = sorted(k for k in set(pb) - set(pa))
    if extra:
        # Packages only in b rarely change numbers; one line keeps big environments readable.
        shown = ", ".join(f"{k} {pb[k].get('version')}" for k in extra[:12])
        more = f" and {len(extra) - 12} more" if len(extra) > 12 else ""
        out.append(
            EnvDifference(
                7,
                "packages only in the second environment",
                None,
                f"{shown}{more}",
                f"{len(extra)} extra",
            )
        )
    for key in sorted(pa):
        ia, ib = pa.get(key), pb.get(key)
        tooling = key in TOOLING
        if ia is None:
            continue
        if ib is None:
            out.append(
                EnvDifference(7 if tooling else 1, f"package {key}", _pkg(ia), None, "missing")
            )
            continue
        if ia.get("origin", "index") != ib.get("origin", "index"):
            out.append(
                EnvDifference(
                    7 if tooling else 1,
                    f"package {key}",
                    _pkg(ia),
                    _pkg(ib),
                    f"origin {ia.get('origin', 'index')} -> {ib.get('origin', 'index')}",
                )
            )
            continue
        if ia.get("version") != ib.get("version"):
            numeric = _package_rank(key) == 0
            out.append(
                EnvDifference(
                    3 if numeric and not tooling else 7,
                    f"package {key}",
                    ia.get("version"),
                    ib.get("version"),
                    "version",
                )
            )
        both_trees = all((i.get("git") or {}).get("snapshot_tree") for i in (ia, ib))
        sa, sb = _source_id(ia, use_tree=both_trees), _source_id(ib, use_tree=both_trees)
        if sa != sb and ia.get("origin") in ("vcs", "editable"):
            out.append(
                EnvDifference(1, f"package {key}", _pkg(ia), _pkg(ib), "source commit differs")
            )
        elif ia.get("path") != ib.get("path") and ia.get("origin") in ("editable", "local"):
            out.append(EnvDifference(7, f"package {key} path", ia.get("path"), ib.get("path")))


def diff_environments(
    env_a: Mapping[str, Any],
    hw_a: Mapping[str, Any],
    env_b: Mapping[str, Any],
    hw_b: Mapping[str, Any],
    *,
    a: str = "recorded",
    b: str = "current",
) -> EnvDiff:
    """Ranked differences between two captured environments (environment.json, hardware.json)."""
    out: list[EnvDifference] = []

    def add(rank: int, key: str, va: Any, vb: Any, note: str = "") -> None:
        if va != vb:
            out.append(EnvDifference(rank, key, va, vb, note))

    _packages(out, env_a.get("packages") or {}, env_b.get("packages") or {})
    py_a, py_b = env_a.get("python") or {}, env_b.get("python") or {}
    vi_a, vi_b = py_a.get("version_info") or [], py_b.get("version_info") or []
    add(2, "Python minor version", ".".join(map(str, vi_a[:2])), ".".join(map(str, vi_b[:2])))
    add(2, "Python implementation", py_a.get("implementation"), py_b.get("implementation"))
    if vi_a[:2] == vi_b[:2]:
        add(7, "Python version", ".".join(map(str, vi_a)), ".".join(map(str, vi_b)))
    t_a, t_b = env_a.get("torch") or {}, env_b.get("torch") or {}
    for key in ("cuda", "hip"):
        add(3, f"torch {key} build", t_a.get(key), t_b.get(key))
    cpu_a, cpu_b = hw_a.get("cpu") or {}, hw_b.get("cpu") or {}
    add(4, "CPU architecture", cpu_a.get("machine"), cpu_b.get("machine"))
    add(4, "CPU numeric instruction sets", cpu_a.get("numeric_flags"), cpu_b.get("numeric_flags"))
    add(4, "CPU model", cpu_a.get("model"), cpu_b.get("model"))
    add(4, "logical cores", cpu_a.get("logical_cores"), cpu_b.get("logical_cores"))
    if hw_a.get("blas") is not None and hw_b.get("blas") is not None:
        add(4, "BLAS", hw_a.get("blas"), hw_b.get("blas"))
    gpu_a, gpu_b = hw_a.get("gpu") or {}, hw_b.get("gpu") or {}
    add(
        5,
        "GPUs",
        [d.get("name") for d in gpu_a.get("devices", [])],
        [d.get("name") for d in gpu_b.get("devices", [])],
    )
    add(5, "NVIDIA driver", gpu_a.get("driver"), gpu_b.get("driver"))
    var_a, var_b = recorded_variables(env_a), recorded_variables(env_b)
    for key in sorted((set(var_a) | set(var_b)) - IGNORED_VARS):
        add(_variable_rank(key), f"${key}", var_a.get(key), var_b.get(key))
    os_a, os_b = env_a.get("os") or {}, env_b.get("os") or {}
    for key in ("distribution", "release", "libc"):
        add(7, f"OS {key}", os_a.get(key), os_b.get(key))
    out.sort(key=lambda d: d.rank)
    return EnvDiff(a=a, b=b, differences=tuple(out))


def diff_run_environments(run_a: str | os.PathLike[str], run_b: str | os.PathLike[str]) -> EnvDiff:
    """Ranked environment differences between two run directories."""
    da, db = Path(run_a), Path(run_b)
    return diff_environments(
        read_part(da, "environment.json"),
        read_part(da, "hardware.json"),
        read_part(db, "environment.json"),
        read_part(db, "hardware.json"),
        a=da.name,
        b=db.name,
    )


def check_environment(
    run_dir: str | os.PathLike[str], *, python: str | os.PathLike[str] | None = None
) -> EnvDiff:
    """The recorded environment of a run against the current one (``python``: which interpreter)."""
    from ..capture.environment import capture_environment
    from ..capture.git import working_tree_id
    from ..capture.hardware import capture_hardware

    folder = Path(run_dir)
    current = capture_environment(executable=os.fspath(python) if python else None)
    for info in current.get("packages", {}).values():
        git = info.get("git") or {}
        if info.get("origin") == "editable" and git.get("dirty") and info.get("path"):
            git["snapshot_tree"] = working_tree_id(info["path"])
    return diff_environments(
        read_part(folder, "environment.json"),
        read_part(folder, "hardware.json"),
        current,
        capture_hardware(),
        a=folder.name,
        b=str(current.get("python", {}).get("executable") or "current"),
    )


def format_env_diff(result: EnvDiff, *, max_rank: int = 7) -> list[str]:
    """Text lines for a terminal: one heading per rank, then ``key: a -> b (note)``."""
    shown = result.within(max_rank)
    if not shown:
        return [
            f"No environment differences (ranks 1-{max_rank}) between {result.a} and {result.b}."
        ]
    lines: list[str] = [f"--- {result.a}", f"+++ {result.b}"]
    rank = None
    for d in shown:
        if d.rank != rank:
            rank = d.rank
            lines.append(f"[{rank}] {RANKS[rank]}")
        note = f" ({d.note})" if d.note else ""
        lines.append(f"    {d.key}: {d.a} -> {d.b}{note}")
    return lines
