"""Compare a reproduction with its original: summary metrics, metric histories, output files.

Each comparison is a :class:`Check` with a status: ``exact``, ``within tolerance``,
``mismatch``, ``missing`` (the original has it, the reproduction does not) or
``not comparable`` (files that hold wall-clock data, such as TensorBoard event files). The
verdict is ``reproduced`` only when something was comparable and nothing mismatched; a run with
nothing comparable is reported as such, never as reproduced.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
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
    "verdict_of",
]

EXACT, WITHIN, MISMATCH, MISSING, NOT_COMPARABLE = (
    "exact",
    "within tolerance",
    "mismatch",
    "missing",
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
    """One comparison: ``kind`` (summary, history, output, checkpoint), name, status, values."""

    kind: str
    name: str
    status: str
    original: Any = None
    reproduced: Any = None
    detail: str = ""

    @property
    def comparable(self) -> bool:
        return self.status != NOT_COMPARABLE

    @property
    def ok(self) -> bool:
        return self.status in (EXACT, WITHIN)

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


def compare_outputs(original: Mapping[str, Any], reproduced: Mapping[str, Any]) -> list[Check]:
    """Hashes of the files both runs recorded in outputs.json (by relative path)."""
    files_b = {f.get("path"): f for f in reproduced.get("files") or []}
    checks = []
    for entry in sorted(original.get("files") or [], key=lambda f: str(f.get("path"))):
        path = str(entry.get("path"))
        if _wall_clock(path):
            checks.append(
                Check("output", path, NOT_COMPARABLE, detail="holds wall-clock data (by name)")
            )
            continue
        digest = entry.get("blake3")
        if not digest:
            continue
        other = files_b.get(path)
        if other is None or not other.get("blake3"):
            checks.append(Check("output", path, MISSING, digest[:16], None, "not produced"))
            continue
        same = other["blake3"] == digest
        checks.append(
            Check(
                "output",
                path,
                EXACT if same else MISMATCH,
                digest[:16],
                str(other["blake3"])[:16],
                ""
                if same
                else f"content differs ({entry.get('size')} vs {other.get('size')} bytes)",
            )
        )
    return checks


def compare_checkpoints(
    original_dir: str | os.PathLike[str], reproduced_dir: str | os.PathLike[str]
) -> list[Check]:
    """Files under both runs' ``checkpoints/`` folders, compared by BLAKE3 hash."""
    from ..record.outputs import hash_file

    a_root, b_root = Path(original_dir) / "checkpoints", Path(reproduced_dir) / "checkpoints"
    if not a_root.is_dir():
        return []
    checks = []
    for path in sorted(p for p in a_root.rglob("*") if p.is_file()):
        rel = path.relative_to(a_root).as_posix()
        if rel.rsplit("/", 1)[-1] in ("manifest.json", "events.jsonl") or rel.endswith(".tmp"):
            continue  # these hold save times; the checkpoint files they list are compared
        other = b_root / rel
        if not other.is_file():
            checks.append(Check("checkpoint", rel, MISSING, detail="not written"))
            continue
        ha, hb = hash_file(path), hash_file(other)
        checks.append(Check("checkpoint", rel, EXACT if ha == hb else MISMATCH, ha[:16], hb[:16]))
    return checks


def verdict_of(checks: Sequence[Check], *, run_status: str = "completed") -> str:
    """``reproduced``, ``reproduced within tolerance``, ``not reproduced``, ``nothing comparable``
    or ``failed`` (the command did not complete)."""
    if run_status != "completed":
        return "failed"
    comparable = [c for c in checks if c.comparable]
    if not comparable:
        return "nothing comparable"
    if not all(c.ok for c in comparable):
        return "not reproduced"
    if all(c.status == EXACT for c in comparable):
        return "reproduced"
    return "reproduced within tolerance"
