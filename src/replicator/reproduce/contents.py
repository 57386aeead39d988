"""Comparing two files whose bytes differ by what they hold: tensors, values, text.

Two equal results written at another time or in another folder differ in their bytes: a
Lightning checkpoint holds its ``ModelCheckpoint`` folder and hyperparameters that name paths,
a metrics file may embed its run folder, a config dump the working directory and the time.
:func:`compare_contents` compares a torch checkpoint tensor by tensor and value by value
(loaded with ``weights_only=True``, so nothing in it runs) and a text file line by line, with
the folders the runs ran in and every timestamp taken out first
(:func:`replicator.compare.outputs.normalise_text`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..compare.outputs import normalise_text

__all__ = ["EQUIVALENT", "MISMATCH", "PATHS_ONLY", "WITHIN", "compare_contents"]

# the statuses of :mod:`.compare` this module can give
EQUIVALENT, WITHIN, MISMATCH = "equivalent", "within tolerance", "mismatch"
PATHS_ONLY = "differs only in embedded paths or timestamps"
# Files compared by their tensors when their bytes differ (torch.save / Lightning checkpoints).
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth")
MAX_TEXT_BYTES = 16 * 2**20


def compare_contents(
    a: Path, b: Path, roots: Sequence[str], *, rtol: float, atol: float
) -> tuple[str, str]:
    """(``equivalent``, ``within tolerance`` or ``mismatch``, detail) for two files whose bytes
    differ; the detail is empty when neither file could be compared by content."""
    if a.suffix in TORCH_SUFFIXES:
        return _compare_torch_files(a, b, roots, rtol=rtol, atol=atol)
    text_a, text_b = _text(a), _text(b)
    if text_a is None or text_b is None:
        return MISMATCH, ""
    if normalise_text(text_a, roots) == normalise_text(text_b, roots):
        return EQUIVALENT, PATHS_ONLY
    size = f"content differs ({a.stat().st_size} vs {b.stat().st_size} bytes)"
    return MISMATCH, f"{size}: {_first_line_difference(text_a, text_b, roots)}"


def _close(a: Any, b: Any, *, rtol: float, atol: float) -> str | None:
    """EQUIVALENT, WITHIN or None (a real difference) for two numbers of one type."""
    if a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
        return EQUIVALENT
    if math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol):
        return WITHIN
    return None


def _text(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _first_line_difference(a: str, b: str, roots: Sequence[str]) -> str:
    lines_a, lines_b = a.splitlines(), b.splitlines()
    for i in range(max(len(lines_a), len(lines_b))):
        la = lines_a[i] if i < len(lines_a) else "<end of file>"
        lb = lines_b[i] if i < len(lines_b) else "<end of file>"
        if normalise_text(la, roots) != normalise_text(lb, roots):
            return f"line {i + 1}: {la[:80]!r} vs {lb[:80]!r}"
    return "line endings differ"


class _TreeDiff:
    """Walks two decoded checkpoints side by side and notes how they differ."""

    MAX_NOTED = 3

    def __init__(self, roots: Sequence[str], *, rtol: float, atol: float) -> None:
        self.roots, self.rtol, self.atol = roots, rtol, atol
        self.paths_only: list[str] = []
        self.within: list[str] = []

    def walk(self, a: Any, b: Any, where: str) -> str | None:
        """The first real difference under ``where``, or None."""
        if _is_tensor(a) or _is_tensor(b):
            return self._tensors(a, b, where)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return self._mappings(a, b, where)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            if len(a) != len(b):
                return f"{where}: {len(a)} vs {len(b)} items"
            for i, (x, y) in enumerate(zip(a, b)):
                found = self.walk(x, y, f"{where}[{i}]")
                if found:
                    return found
            return None
        if isinstance(a, str) and isinstance(b, str):
            if a == b:
                return None
            if normalise_text(a, self.roots) == normalise_text(b, self.roots):
                self.paths_only.append(where)
                return None
            return f"{where}: {a[:60]!r} vs {b[:60]!r}"
        if isinstance(a, (int, float)) and type(a) is type(b) and not isinstance(a, bool):
            status = _close(a, b, rtol=self.rtol, atol=self.atol)
            if status == WITHIN:
                self.within.append(where)
            return None if status else f"{where}: {a!r} vs {b!r}"
        if type(a).__module__ == "numpy" and type(b).__module__ == "numpy":
            import numpy as np

            same = bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
            return None if same else f"{where}: arrays differ"
        try:
            same = bool(a == b)
        except Exception:  # an object without a usable ==
            same = False
        return None if same else f"{where}: {str(a)[:60]} vs {str(b)[:60]}"

    def _mappings(self, a: Mapping[Any, Any], b: Mapping[Any, Any], where: str) -> str | None:
        def keyed(m: Mapping[Any, Any]) -> dict[Any, Any]:
            return {
                normalise_text(k, self.roots) if isinstance(k, str) else k: v for k, v in m.items()
            }

        ka, kb = keyed(a), keyed(b)
        if set(ka) != set(kb):
            only = sorted(map(str, set(ka) ^ set(kb)))[:3]
            return f"{where or 'top level'}: keys differ ({', '.join(only)})"
        for key, value in ka.items():
            name = str(key) if len(str(key)) <= 40 else str(key)[:37] + "..."
            found = self.walk(value, kb[key], f"{where}.{name}" if where else name)
            if found:
                return found
        return None

    def _tensors(self, a: Any, b: Any, where: str) -> str | None:
        import torch

        if not (_is_tensor(a) and _is_tensor(b)):
            return f"{where}: {type(a).__name__} vs {type(b).__name__}"
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{where}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}"
        if a.is_floating_point() or a.is_complex():
            if torch.equal(a.isnan(), b.isnan()) and torch.equal(
                a.nan_to_num(0.0), b.nan_to_num(0.0)
            ):
                return None
            if torch.allclose(a, b, rtol=self.rtol, atol=self.atol, equal_nan=True):
                self.within.append(where)
                return None
            gap = float((a.double() - b.double()).abs().nan_to_num(0.0).max())
            return f"{where}: tensors differ (largest difference {gap:.3g})"
        return None if torch.equal(a, b) else f"{where}: tensors differ"


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "dtype")


def _compare_torch_files(
    a: Path, b: Path, roots: Sequence[str], *, rtol: float, atol: float
) -> tuple[str, str]:
    """(status, detail) of two torch checkpoints whose bytes differ, by their tensors and values."""
    try:
        import torch

        # weights_only: a checkpoint is data; nothing in it is run to compare it
        tree_a = torch.load(a, map_location="cpu", weights_only=True)
        tree_b = torch.load(b, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch missing, or a file torch cannot read safely
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        return MISMATCH, f"content differs; not comparable by tensors ({type(exc).__name__}: {why})"
    diff = _TreeDiff(roots, rtol=rtol, atol=atol)
    found = diff.walk(tree_a, tree_b, "")
    if found:
        return MISMATCH, f"a real difference: {found}"
    if diff.within:
        return WITHIN, f"tensors within tolerance (first at {diff.within[0]})"
    if diff.paths_only:
        shown = ", ".join(diff.paths_only[: _TreeDiff.MAX_NOTED])
        more = len(diff.paths_only) - _TreeDiff.MAX_NOTED
        return (
            EQUIVALENT,
            f"same tensors; {PATHS_ONLY} ({shown}{f' and {more} more' if more > 0 else ''})",
        )
    return EQUIVALENT, "same tensors and values; only the file's bytes differ"
