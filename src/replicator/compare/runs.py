"""``replicator diff``: what differs between two runs, most likely cause of different numbers first.

The environment comes first, in the seven ranks of ``replicator env diff`` (missing packages or
changed origins, Python minor version, numeric libraries and CUDA builds, BLAS/CPU/threads,
GPU and driver, determinism variables, the rest); then seeds, config, data, code, and last the
final metrics and the output files that differ as a consequence. Output files are paired by
their place in the run's output folder (timestamped folder names normalised, see
:mod:`replicator.compare.outputs`) and compared by their recorded BLAKE3 hash; log files and
config dumps are marked as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..config import flatten
from ..store import RunRecord

__all__ = ["Difference", "RunDiff", "diff_runs"]

# Sections after the environment's seven ranks (replicator.compare.environment.RANKS).
SECTIONS = ("seeds", "config", "data", "code", "metrics", "outputs")


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
    """Every difference between runs ``a`` and ``b``, most likely cause of different numbers first."""

    a: str
    b: str
    differences: tuple[Difference, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "differences": [asdict(d) for d in self.differences]}


def diff_runs(a: RunRecord, b: RunRecord) -> RunDiff:
    """Every difference between two runs' records, ranked."""
    out: list[Difference] = []

    def add(section: str, key: str, va: Any, vb: Any, sub: int = 0) -> None:
        if va != vb:
            out.append(Difference(section, key, va, vb, 10 * (SECTIONS.index(section) + 1) + sub))

    # Environment and hardware: one ranking, shared with `replicator env diff`.
    from .environment import RANKS, diff_environments

    env = diff_environments(
        a.part("environment.json"),
        a.part("hardware.json"),
        b.part("environment.json"),
        b.part("hardware.json"),
        a=a.id,
        b=b.id,
    )
    for d in env.differences:
        key = f"{d.key} ({d.note})" if d.note else d.key
        out.append(Difference(f"environment: {RANKS[d.rank]}", key, d.a, d.b, d.rank))
    add(
        "seeds",
        "str hash seed",
        a.meta.get("python_hash_seed"),
        b.meta.get("python_hash_seed"),
    )
    add("seeds", "seed", a.seed, b.seed)
    add("seeds", "deterministic", a.meta.get("deterministic"), b.meta.get("deterministic"))
    cfg_a, cfg_b = flatten(a.config), flatten(b.config)
    for key in sorted(set(cfg_a) | set(cfg_b)):
        if key == "seed":
            continue
        add("config", key, cfg_a.get(key, "<absent>"), cfg_b.get(key, "<absent>"))
    data_a, data_b = a.meta.get("data") or {}, b.meta.get("data") or {}
    if data_a or data_b:
        from ..data import diff_recorded

        store_root = a.dir.parent.parent  # runs/ID -> the store
        for change in diff_recorded(data_a, data_b, store=store_root).values():
            if change.status == "same":
                continue
            add("data", change.summary(), _digest(change.a), _digest(change.b))
            files = _file_changes(change.name, change.diff)
            for key, va, vb in files[:MAX_FILES_SHOWN]:
                add("data", key, va, vb, 1)
            hidden = len(files) - MAX_FILES_SHOWN
            if hidden > 0:
                add("data", f"{change.name}: {hidden} more changed files", "", "see data diff", 1)
    code_a, code_b = a.part("code.json"), b.part("code.json")
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
    for key, va, vb, sub in _output_changes(a.part("outputs.json"), b.part("outputs.json")):
        add("outputs", key, va, vb, sub)
    out.sort(key=lambda d: d.rank)
    return RunDiff(a=a.id, b=b.id, differences=tuple(out))


MAX_FILES_SHOWN = 20


def _output_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any, int]]:
    """(key, a, b, sub-rank) per output file whose hash differs; logs after results."""
    from .outputs import LOG, match_outputs, output_role

    out = []
    for key, file_a, file_b in match_outputs(a, b):
        hash_a, hash_b = (_file_hash(f) for f in (file_a, file_b))
        if hash_a == hash_b:
            continue
        log = output_role(key) == LOG
        out.append((f"{key} (log or config dump)" if log else key, hash_a, hash_b, int(log)))
    return out


def _file_hash(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "<absent>"
    digest = entry.get("blake3")
    return f"blake3:{str(digest)[:16]}" if digest else f"<unreadable: {entry.get('error')}>"


def _file_changes(name: str, data_diff: Any) -> list[tuple[str, Any, Any]]:
    """(key, a, b) per changed file of one dataset, in a stable order."""
    if data_diff is None:
        return []
    out: list[tuple[str, Any, Any]] = []
    out += [(f"{name}/{e.relpath}", "<absent>", f"added ({e.size} B)") for e in data_diff.added]
    out += [(f"{name}/{e.relpath}", f"{e.size} B", "<removed>") for e in data_diff.removed]
    out += [
        (f"{name}/{new.relpath}", f"{old.digest[:12]}", f"{new.digest[:12]} (modified)")
        for old, new in data_diff.modified
    ]
    out += [
        (f"{name}/{old.relpath}", old.relpath, f"{new.relpath} (renamed)")
        for old, new in data_diff.renamed
    ]
    return out


def _digest(record: Mapping[str, Any] | None) -> str | None:
    if not record:
        return None
    return f"{record.get('algo')}:{str(record.get('digest'))[:12]}"
