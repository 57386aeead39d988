"""Compare a reproduction with its original: summary metrics, metric histories, output files.

Each comparison is a :class:`Check` with a status: ``exact``, ``within tolerance``,
``equivalent`` (the bytes differ, the content does not: a checkpoint with the same tensors, a
file that differs only in embedded paths or timestamps), ``mismatch``, ``missing`` (the original
has it, the reproduction does not), ``cannot compare`` (something needed is unreadable: never
counted as equal) or ``not comparable`` (files that hold wall-clock data, such as TensorBoard
event files).

Each check also has a ``role``: ``result`` checks decide the verdict; ``log`` checks (log files
and config dumps) and ``not selected`` ones (outside ``--outputs``/``--metrics``) are reported
and decide nothing. Output files are paired by their place in the run's output folder, with
timestamped folder names normalised (:mod:`replicator.compare.outputs`).

The verdict is ``reproduced`` only when some result was comparable and every result matched;
``not reproduced`` names the results that did not, ``cannot compare`` the ones that could not be
read, and a run with no result is reported as ``nothing comparable``, never as reproduced.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._util.io import read_json
from ..compare.outputs import LOG, RESULT, match_outputs, output_role
from .contents import compare_contents

__all__ = [
    "CANNOT_COMPARE",
    "EQUIVALENT",
    "EXACT",
    "MISMATCH",
    "MISSING",
    "NOT_COMPARABLE",
    "WITHIN",
    "Check",
    "compare_checkpoints",
    "compare_histories",
    "compare_outputs",
    "compare_summaries",
    "compare_values",
    "decision",
    "verdict_of",
]

EXACT, WITHIN, EQUIVALENT, MISMATCH, MISSING, CANNOT_COMPARE, NOT_COMPARABLE = (
    "exact",
    "within tolerance",
    "equivalent",
    "mismatch",
    "missing",
    "cannot compare",
    "not comparable",
)
# Files known to embed wall-clock times or host names: equal results give different bytes.
WALL_CLOCK_PATTERNS = (
    "events.out.tfevents.*",
    "*.wandb",
    "wandb/*",
    "mlruns/*/meta.yaml",
    "*.nfs*",
)


@dataclass(frozen=True)
class Check:
    """One comparison: ``kind`` (summary, history, output, checkpoint), name, status, values,
    and its ``role``: ``result`` decides the verdict, ``log`` and ``not selected`` do not."""

    kind: str
    name: str
    status: str
    original: Any = None
    reproduced: Any = None
    detail: str = ""
    role: str = RESULT

    @property
    def comparable(self) -> bool:
        return self.status != NOT_COMPARABLE

    @property
    def decides(self) -> bool:
        return self.role == RESULT and self.comparable

    @property
    def ok(self) -> bool:
        return self.status in (EXACT, WITHIN, EQUIVALENT)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    return None


def compare_values(a: Any, b: Any, *, rtol: float, atol: float) -> str:
    """``exact``, ``within tolerance`` or ``mismatch`` for two metric values."""
    if a == b:
        return EXACT
    na, nb = _number(a), _number(b)
    if na is None or nb is None:
        return MISMATCH
    if math.isnan(na) and math.isnan(nb):
        return EXACT
    if math.isclose(na, nb, rel_tol=rtol, abs_tol=atol):
        return WITHIN
    return MISMATCH


def _selected(names: Iterable[str], metrics: Sequence[str] | None) -> list[str]:
    if not metrics:
        return sorted(names)
    return [n for n in sorted(names) if any(fnmatch.fnmatchcase(n, m) for m in metrics)]


def compare_summaries(
    original: Mapping[str, Any],
    reproduced: Mapping[str, Any],
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    metrics: Sequence[str] | None = None,
) -> list[Check]:
    """Every (selected) summary value of the original against the reproduction's."""
    checks = []
    for name in _selected(original, metrics):
        a = original[name]
        if name not in reproduced:
            checks.append(Check("summary", name, MISSING, a, None, "not in the reproduction"))
            continue
        b = reproduced[name]
        status = compare_values(a, b, rtol=rtol, atol=atol)
        detail = ""
        na, nb = _number(a), _number(b)
        if status != EXACT and na is not None and nb is not None:
            detail = f"difference {nb - na:.3g}"
        checks.append(Check("summary", name, status, a, b, detail))
    return checks


def _series(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[Any, Any]]]:
    series: dict[str, list[tuple[Any, Any]]] = {}
    for entry in entries:
        series.setdefault(str(entry.get("key")), []).append((entry.get("step"), entry.get("value")))
    return series


def compare_histories(
    original: Iterable[Mapping[str, Any]],
    reproduced: Iterable[Mapping[str, Any]],
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    metrics: Sequence[str] | None = None,
) -> list[Check]:
    """Metric histories point by point; a mismatch names the first step where they diverge."""
    sa, sb = _series(original), _series(reproduced)
    checks = []
    for name in _selected(sa, metrics):
        a = sa[name]
        b = sb.get(name)
        if not b:
            checks.append(Check("history", name, MISSING, f"{len(a)} points", None))
            continue
        status = EXACT
        detail = ""
        for i, (step_a, value_a) in enumerate(a):
            if i >= len(b):
                status = MISMATCH
                detail = (
                    f"the reproduction stops before step {step_a} ({len(b)} of {len(a)} points)"
                )
                break
            step_b, value_b = b[i]
            if step_a != step_b:
                status = MISMATCH
                detail = f"diverges at point {i}: step {step_a} vs step {step_b}"
                break
            point = compare_values(value_a, value_b, rtol=rtol, atol=atol)
            if point == MISMATCH:
                status = MISMATCH
                detail = f"diverges at step {step_a}: {value_a} vs {value_b}"
                break
            if point == WITHIN and status == EXACT:
                status = WITHIN
                detail = f"{len(a)} points; first inexact at step {step_a}"
        if status != MISMATCH and len(b) > len(a):
            status = MISMATCH
            detail = f"the reproduction logged {len(b) - len(a)} more points"
        checks.append(
            Check("history", name, status, f"{len(a)} points", f"{len(b)} points", detail)
        )
    return checks


def _wall_clock(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(path, p) for p in WALL_CLOCK_PATTERNS
    )


@dataclass(frozen=True)
class _Sides:
    """Where each run's output files lie, and the folders their contents may embed."""

    original_root: Path | None = None
    reproduced_root: Path | None = None
    roots: tuple[str, ...] = ()


def compare_outputs(
    original: Mapping[str, Any],
    reproduced: Mapping[str, Any],
    *,
    original_root: str | os.PathLike[str] | None = None,
    reproduced_root: str | os.PathLike[str] | None = None,
    roots: Sequence[str] = (),
    select: Sequence[str] | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
) -> list[Check]:
    """The files both runs recorded in outputs.json, paired by their normalised path.

    Equal hashes are ``exact``. When they differ and both files are still on disk (under
    ``original_root`` and ``reproduced_root``, the runs' working directories), a torch
    checkpoint is compared by its tensors and values, a text file with ``roots`` (the folders
    the runs ran in) and timestamps taken out; only a difference left then is a ``mismatch``.
    ``select`` (glob patterns) names the files that decide; by default every file but logs and
    config dumps does.
    """
    sides = _Sides(
        Path(original_root) if original_root is not None else None,
        Path(reproduced_root) if reproduced_root is not None else None,
        tuple(roots),
    )
    checks = []
    for key, entry, other in match_outputs(original, reproduced):
        if entry is None:
            continue  # a file only the reproduction wrote: nothing to compare it with
        path = str(entry.get("path"))
        role = output_role(path, select)
        if _wall_clock(path):
            checks.append(
                Check(
                    "output",
                    path,
                    NOT_COMPARABLE,
                    detail="holds wall-clock data (by name)",
                    role=LOG if role == RESULT else role,
                )
            )
            continue
        checks.append(_compare_output(key, entry, other, sides, role, rtol=rtol, atol=atol))
    return checks


def _compare_output(
    key: str,
    entry: Mapping[str, Any],
    other: Mapping[str, Any] | None,
    sides: _Sides,
    role: str,
    *,
    rtol: float,
    atol: float,
) -> Check:
    digest = entry.get("blake3")
    if not digest:
        why = entry.get("error") or "no hash recorded"
        return Check("output", key, CANNOT_COMPARE, None, None, f"original: {why}", role)
    if other is None:
        return Check("output", key, MISSING, digest[:16], None, "not produced", role)
    if not other.get("blake3"):
        why = other.get("error") or "no hash recorded"
        return Check("output", key, CANNOT_COMPARE, digest[:16], None, f"reproduction: {why}", role)
    a, b = str(digest)[:16], str(other["blake3"])[:16]
    if other["blake3"] == digest:
        return Check("output", key, EXACT, a, b, "", role)
    status, detail = _compare_files(entry, other, sides, rtol=rtol, atol=atol)
    return Check("output", key, status, a, b, detail, role)


def _on_disk(root: Path | None, entry: Mapping[str, Any]) -> Path | None:
    if root is None:
        return None
    path = Path(str(entry.get("path")))
    path = path if path.is_absolute() else root / path
    return path if path.is_file() else None


def _compare_files(
    entry: Mapping[str, Any],
    other: Mapping[str, Any],
    sides: _Sides,
    *,
    rtol: float,
    atol: float,
) -> tuple[str, str]:
    """(status, detail) for two output files whose hashes differ."""
    from .._util.hashing import hash_file

    differs = f"content differs ({entry.get('size')} vs {other.get('size')} bytes)"
    path_a = _on_disk(sides.original_root, entry)
    path_b = _on_disk(sides.reproduced_root, other)
    if path_a is None or path_b is None:
        return MISMATCH, differs
    try:
        if hash_file(path_a) != entry.get("blake3"):
            return MISMATCH, f"{differs}; the original file has changed since the run"
    except OSError:
        return MISMATCH, differs
    status, detail = compare_contents(path_a, path_b, sides.roots, rtol=rtol, atol=atol)
    return status, detail if status != MISMATCH or detail else differs


def _checkpoint_manifest(root: Path, side: str) -> tuple[list[str] | None, str | None]:
    """(files the manifest lists, why it cannot be read) of one run's checkpoints folder."""
    path = root / "manifest.json"
    if not path.exists():
        return None, None
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as exc:
        return (
            None,
            f"the {side}'s checkpoint manifest {path} is unreadable ({type(exc).__name__}: {exc})",
        )
    if not isinstance(manifest, dict) or not isinstance(manifest.get("checkpoints", []), list):
        return None, f"the {side}'s checkpoint manifest {path} is not a manifest"
    files = [
        str(e["file"])
        for e in manifest.get("checkpoints", [])
        if isinstance(e, dict) and e.get("file")
    ]
    return files, None


def compare_checkpoints(
    original_dir: str | os.PathLike[str],
    reproduced_dir: str | os.PathLike[str],
    *,
    select: Sequence[str] | None = None,
) -> list[Check]:
    """Files under both runs' ``checkpoints/`` folders, compared by BLAKE3 hash.

    A manifest that cannot be read, or a checkpoint it lists that is not on disk, is ``cannot
    compare``: what the run saved is not known, so it is never taken as equal.
    """
    from .._util.hashing import hash_file

    a_root, b_root = Path(original_dir) / "checkpoints", Path(reproduced_dir) / "checkpoints"
    if not a_root.is_dir():
        return []

    def role(rel: str) -> str:
        return output_role(f"checkpoints/{rel}", select) if select else RESULT

    checks = []
    listed, problem = _checkpoint_manifest(a_root, "original")
    _, other_problem = (
        _checkpoint_manifest(b_root, "reproduction") if b_root.is_dir() else (None, None)
    )
    for why in (problem, other_problem):
        if why:
            checks.append(
                Check(
                    "checkpoint",
                    "manifest.json",
                    CANNOT_COMPARE,
                    detail=why,
                    role=role("manifest.json"),
                )
            )
    for rel in listed or ():
        if not (a_root / rel).is_file():
            detail = "listed in the original's manifest but not on disk"
            checks.append(Check("checkpoint", rel, CANNOT_COMPARE, detail=detail, role=role(rel)))
    for path in sorted(p for p in a_root.rglob("*") if p.is_file()):
        rel = path.relative_to(a_root).as_posix()
        if rel.rsplit("/", 1)[-1] in ("manifest.json", "events.jsonl") or rel.endswith(".tmp"):
            continue  # these hold save times; the checkpoint files they list are compared
        other = b_root / rel
        if not other.is_file():
            checks.append(Check("checkpoint", rel, MISSING, detail="not written", role=role(rel)))
            continue
        ha, hb = hash_file(path), hash_file(other)
        status = EXACT if ha == hb else MISMATCH
        checks.append(Check("checkpoint", rel, status, ha[:16], hb[:16], role=role(rel)))
    return checks


def verdict_of(checks: Sequence[Check], *, run_status: str = "completed") -> str:
    """``reproduced``, ``reproduced within tolerance``, ``not reproduced``, ``cannot compare``,
    ``nothing comparable`` or ``failed`` (the command did not complete), from the checks that
    decide (results; logs and unselected files never do)."""
    if run_status != "completed":
        return "failed"
    deciding = [c for c in checks if c.decides]
    if not deciding:
        return "nothing comparable"
    if any(c.status in (MISMATCH, MISSING) for c in deciding):
        return "not reproduced"
    if any(c.status == CANNOT_COMPARE for c in deciding):
        return "cannot compare"
    if all(c.status in (EXACT, EQUIVALENT) for c in deciding):
        return "reproduced"
    return "reproduced within tolerance"


MAX_NAMED = 8


def _named(checks: Sequence[Check]) -> str:
    shown = [f"{c.kind} {c.name}: {c.detail or c.status}" for c in checks[:MAX_NAMED]]
    more = len(checks) - MAX_NAMED
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _counted(checks: Sequence[Check]) -> str:
    kinds: dict[str, int] = {}
    for c in checks:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    one = {"summary": "summary value", "output": "output file"}
    many = {"summary": "summary values", "history": "histories", "output": "output files"}
    return ", ".join(
        f"{n} {one.get(kind, kind) if n == 1 else many.get(kind, kind + 's')}"
        for kind, n in kinds.items()
    )


def decision(checks: Sequence[Check], verdict: str) -> str:
    """What decided ``verdict``: the results that failed it, or what it rests on."""
    deciding = [c for c in checks if c.decides]
    others = [c for c in checks if not c.decides]
    aside = ""
    if others:
        differ = [c for c in others if c.comparable and not c.ok]
        aside = f"; {len(others)} not deciding (logs, config dumps, files not selected)" + (
            f", of which {len(differ)} differ{'s' if len(differ) == 1 else ''}" if differ else ""
        )
    if verdict == "failed":
        return "the command did not complete, so nothing was compared"
    if verdict == "not reproduced":
        return _named([c for c in deciding if c.status in (MISMATCH, MISSING)]) + aside
    if verdict == "cannot compare":
        return "could not be read: " + _named([c for c in deciding if c.status == CANNOT_COMPARE])
    if verdict == "nothing comparable":
        return "no metric, output file or checkpoint that decides was recorded" + aside
    equivalent = [c for c in deciding if c.status in (EQUIVALENT, WITHIN)]
    note = f" ({_named(equivalent)})" if equivalent else ""
    return f"{_counted(deciding)} matched{note}{aside}"
