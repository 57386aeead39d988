"""What changed between two fingerprints: added, removed, modified and renamed files.

Also the datasets a run records: :func:`fingerprint_datasets` makes the JSON records kept in
``run.json["data"]``, :func:`diff_recorded` compares two runs' records from stored manifests.

Sides can be :class:`Fingerprint` objects, paths (fingerprinted now), stored manifest ids
(``blake3/<digest>.dir``) or runs (their datasets recorded in ``run.json`` under ``"data"``).
A *rename* is a removed and an added file with the same digest (same content, new path); empty
files are never paired as renames, since every empty file has the same digest.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util.format import format_size
from ..errors import (
    MissingDependencyError,
    ReplicatorError,
    RunNotFoundError,
    StoreError,
    UsageError,
)
from ..store import Store, StoreLike
from .digest import ALGORITHMS, Fingerprint, ManifestEntry
from .fingerprint import fingerprint
from .manifest import load_manifest

if TYPE_CHECKING:
    from .._util.progress import Progress

__all__ = [
    "DataDiff",
    "DatasetChange",
    "diff",
    "diff_fingerprints",
    "diff_recorded",
    "fingerprint_datasets",
    "format_record",
    "format_size",
]


def format_record(name: str, record: dict[str, Any]) -> str:
    """A line for `show`: ``train  blake3:2dad2f16fca3.dir  78.1 MiB, 20000 files  data``."""
    digest = str(record.get("digest", "?"))
    short = digest[:12] + (".dir" if digest.endswith(".dir") else "")
    size = format_size(int(record.get("size") or 0))
    files = f"{record.get('nfiles', '?')} file{'' if record.get('nfiles') == 1 else 's'}"
    return f"{name}  {record.get('algo', '?')}:{short}  {size}, {files}  {record.get('path', '')}"


@dataclass(frozen=True)
class DataDiff:
    """Files that differ between fingerprint ``a`` (old) and ``b`` (new)."""

    algo: str
    a_digest: str
    b_digest: str
    added: tuple[ManifestEntry, ...] = ()
    removed: tuple[ManifestEntry, ...] = ()
    modified: tuple[tuple[ManifestEntry, ManifestEntry], ...] = ()  # (old, new)
    renamed: tuple[tuple[ManifestEntry, ManifestEntry], ...] = ()  # (old path, new path)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return self.a_digest != self.b_digest

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "modified": len(self.modified),
            "renamed": len(self.renamed),
            "unchanged": self.unchanged,
        }

    def bytes(self) -> dict[str, int]:
        """Bytes per kind of change (modified: the new files' sizes)."""
        return {
            "added": sum(e.size for e in self.added),
            "removed": sum(e.size for e in self.removed),
            "modified": sum(new.size for _, new in self.modified),
            "renamed": sum(new.size for _, new in self.renamed),
        }

    def summary(self) -> str:
        """One line: ``2 added (8.0 KiB), 1 modified (4.0 KiB), 19997 unchanged``."""
        if not self.changed:
            return f"unchanged ({self.unchanged} files)"
        counts, sizes = self.counts(), self.bytes()
        parts = [
            f"{counts[k]} {k} ({format_size(sizes[k])})"
            for k in ("added", "removed", "modified", "renamed")
            if counts[k]
        ]
        parts.append(f"{self.unchanged} unchanged")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "algo": self.algo,
            "a": self.a_digest,
            "b": self.b_digest,
            "changed": self.changed,
            "counts": self.counts(),
            "bytes": self.bytes(),
            "added": [e.relpath for e in self.added],
            "removed": [e.relpath for e in self.removed],
            "modified": [new.relpath for _, new in self.modified],
            "renamed": [{"from": old.relpath, "to": new.relpath} for old, new in self.renamed],
        }


def diff_fingerprints(a: Fingerprint, b: Fingerprint) -> DataDiff:
    """Compare two fingerprints of the same algorithm file by file."""
    if a.algo != b.algo:
        raise UsageError(
            f"Cannot compare a {a.algo} fingerprint with a {b.algo} one; "
            f"fingerprint both with the same --algo."
        )
    a_entries, b_entries = a.entries, b.entries
    if a.kind == "file" and b.kind == "file":
        # Two single files: compare their content whatever they are called.
        b_entries = tuple(ManifestEntry(a_entries[0].relpath, e.size, e.digest) for e in b_entries)
    old = {e.relpath: e for e in a_entries}
    new = {e.relpath: e for e in b_entries}
    modified = tuple((old[p], new[p]) for p in sorted(old.keys() & new.keys()) if old[p] != new[p])
    unchanged = len(old.keys() & new.keys()) - len(modified)
    gone = [old[p] for p in sorted(old.keys() - new.keys())]
    came = [new[p] for p in sorted(new.keys() - old.keys())]
    # Pair removed and added files with the same content as renames, in path order.
    by_digest: dict[str, list[ManifestEntry]] = defaultdict(list)
    for e in came:
        if e.size > 0:
            by_digest[e.digest].append(e)
    renamed, removed = [], []
    paired: set[str] = set()
    for e in gone:
        candidates = by_digest.get(e.digest) if e.size > 0 else None
        if candidates:
            target = candidates.pop(0)
            paired.add(target.relpath)
            renamed.append((e, target))
        else:
            removed.append(e)
    added = tuple(e for e in came if e.relpath not in paired)
    return DataDiff(
        algo=a.algo,
        a_digest=a.digest,
        b_digest=b.digest,
        added=added,
        removed=tuple(removed),
        modified=modified,
        renamed=tuple(renamed),
        unchanged=unchanged,
    )


# --------------------------------------------------------------------------- recorded datasets
def fingerprint_datasets(
    data: Mapping[str, str | os.PathLike[str] | Mapping[str, Any]],
    *,
    store: StoreLike = None,
    base_dir: str | os.PathLike[str] | None = None,
    algo: str = "blake3",
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Fingerprint a config's ``data:`` section (name -> path) into JSON-ready records.

    Relative paths are taken from ``base_dir`` (default: the working directory). A value may
    also be a mapping ``{"path": ..., "algo": "md5"}``. Each record holds ``path`` (as given),
    ``abspath``, ``kind``, ``algo``, ``digest``, ``size``, ``nfiles``, ``manifest`` (the stored
    manifest id, or None for a single file) and ``skipped``; ``run.json`` keeps them under
    ``"data"`` so that :func:`replicator.data.diff_recorded` can say which files changed.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    records: dict[str, dict[str, Any]] = {}
    for name, spec in data.items():
        chosen = algo
        if isinstance(spec, Mapping):
            if "path" not in spec:
                raise UsageError(f"Dataset '{name}' in the config's data: section needs a 'path'.")
            chosen = str(spec.get("algo", algo))
            raw: Any = spec["path"]
        else:
            raw = spec
        target = Path(os.path.expanduser(os.fspath(raw)))
        if not target.is_absolute():
            target = base / target
        try:
            fp = fingerprint(target, algo=chosen, store=store, progress=progress)
        except MissingDependencyError:
            raise
        except ReplicatorError as exc:
            raise type(exc)(f"Dataset '{name}' ({os.fspath(raw)}): {exc}") from exc
        records[name] = {
            "path": os.fspath(raw),
            "abspath": str(fp.path),
            "kind": fp.kind,
            "algo": fp.algo,
            "digest": fp.digest,
            "size": fp.size,
            "nfiles": fp.nfiles,
            "manifest": fp.manifest_id,
            "skipped": [{"relpath": r, "reason": why} for r, why in fp.skipped],
        }
    return records


def _record_fingerprint(record: dict[str, Any], store_root: Path) -> Fingerprint | None:
    """The manifest behind a recorded dataset, or None when it cannot be had."""
    manifest = record.get("manifest")
    if manifest:
        return load_manifest(store_root, str(manifest))
    if record.get("kind") == "file":
        name = Path(str(record.get("path", "file"))).name
        entry = ManifestEntry(name, int(record.get("size", 0)), str(record["digest"]))
        return Fingerprint(
            digest=entry.digest,
            algo=str(record["algo"]),
            size=entry.size,
            nfiles=1,
            kind="file",
            entries=(entry,),
        )
    return None


@dataclass(frozen=True)
class DatasetChange:
    """How one named dataset differs between two runs."""

    name: str
    status: str  # "same", "changed", "added", "removed" or "unknown"
    a: dict[str, Any] | None = None
    b: dict[str, Any] | None = None
    diff: DataDiff | None = None
    note: str = field(default="")

    def summary(self) -> str:
        if self.status == "same":
            return f"{self.name}: unchanged"
        if self.status in ("added", "removed"):
            return f"{self.name}: only in run {'b' if self.status == 'added' else 'a'}"
        if self.diff is not None:
            return f"{self.name}: {self.diff.summary()}"
        return f"{self.name}: {self.status}" + (f" ({self.note})" if self.note else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "a": self.a,
            "b": self.b,
            "diff": self.diff.as_dict() if self.diff else None,
            "note": self.note,
        }


def diff_recorded(
    a: dict[str, dict[str, Any]],
    b: dict[str, dict[str, Any]],
    *,
    store: StoreLike,
) -> dict[str, DatasetChange]:
    """Compare two runs' recorded datasets (``run.json["data"]``), name by name.

    Uses the manifests stored by :func:`fingerprint_datasets`; never touches the data itself, so
    it works after the data moved or changed. A missing manifest degrades to digest equality.
    """
    root = Store.coerce(store).root
    out: dict[str, DatasetChange] = {}
    for name in sorted(set(a) | set(b)):
        ra, rb = a.get(name), b.get(name)
        if ra is None or rb is None:
            out[name] = DatasetChange(name, "added" if ra is None else "removed", ra, rb)
            continue
        if ra.get("algo") != rb.get("algo"):
            out[name] = DatasetChange(
                name,
                "unknown",
                ra,
                rb,
                note=f"recorded with different algorithms ({ra.get('algo')} vs {rb.get('algo')})",
            )
            continue
        if ra.get("digest") == rb.get("digest"):
            out[name] = DatasetChange(name, "same", ra, rb)
            continue
        try:
            fa, fb = _record_fingerprint(ra, root), _record_fingerprint(rb, root)
        except StoreError as exc:
            out[name] = DatasetChange(name, "changed", ra, rb, note=str(exc))
            continue
        if fa is None or fb is None:
            out[name] = DatasetChange(
                name, "changed", ra, rb, note="digests differ; no manifest to list files"
            )
            continue
        out[name] = DatasetChange(name, "changed", ra, rb, diff=diff_fingerprints(fa, fb))
    return out


# --------------------------------------------------------------------------- resolving sides
def run_datasets(
    store: Store, ref: str, *, not_a_run: str, error: type[ReplicatorError]
) -> tuple[str, dict[str, dict[str, Any]]]:
    """A run's id and its recorded datasets (``run.json["data"]``).

    When ``ref`` names no run, raises ``error``: ``not_a_run``, then the store's message.
    """
    try:
        record = store.get(ref)
    except RunNotFoundError as exc:
        raise error(f"{not_a_run}: {exc}") from exc
    data = record.meta.get("data") or {}
    if not isinstance(data, dict):
        raise StoreError(f"Run {record.id}: run.json 'data' is not a mapping of datasets.")
    return record.id, data


def _pick(data: dict[str, dict[str, Any]], name: str | None, where: str) -> dict[str, Any]:
    if name is not None:
        if name not in data:
            known = ", ".join(sorted(data)) or "none"
            raise UsageError(f"{where} has no dataset '{name}' (datasets: {known}).")
        return data[name]
    if len(data) == 1:
        return next(iter(data.values()))
    if not data:
        raise UsageError(f"{where} recorded no datasets (its config had no data: section).")
    raise UsageError(
        f"{where} recorded {len(data)} datasets ({', '.join(sorted(data))}); "
        "choose one with --name."
    )


def resolve_side(
    ref: Fingerprint | str | os.PathLike[str],
    *,
    store: Store,
    algo: str | None,
    name: str | None,
) -> Fingerprint:
    """Turn a fingerprint, path, manifest id or run reference into a fingerprint."""
    if isinstance(ref, Fingerprint):
        return ref
    text = os.fspath(ref)
    if os.path.lexists(text):
        return fingerprint(text, algo=algo or "blake3", store=store)
    head = text.partition("/")[0]
    if head in ALGORITHMS and text.endswith(".dir"):
        return load_manifest(store.root, text)
    run_id, data = run_datasets(
        store,
        text,
        not_a_run=f"'{text}' is neither a path, a manifest id (ALGO/DIGEST.dir) nor a run",
        error=UsageError,
    )
    record = _pick(data, name, f"Run {run_id}")
    fp = _record_fingerprint(record, store.root)
    if fp is None:
        raise StoreError(f"Run {run_id}: the dataset's manifest is not stored; cannot list files.")
    return fp


def diff(
    a: Fingerprint | str | os.PathLike[str],
    b: Fingerprint | str | os.PathLike[str],
    *,
    store: StoreLike = None,
    algo: str | None = None,
    name: str | None = None,
) -> DataDiff:
    """Files added, removed, modified and renamed from ``a`` to ``b``.

    Each side is a :class:`Fingerprint`, a path (fingerprinted now, cached), a stored manifest id
    or a run id (``name`` picks the dataset when the run recorded several). A path compared with
    a recorded side is hashed with the recorded side's algorithm.
    """
    st = Store.coerce(store)
    sides: list[Fingerprint | None] = [None, None]
    # Resolve recorded sides first, so that a path on the other side uses their algorithm.
    for i, ref in sorted(enumerate((a, b)), key=lambda t: _is_path(t[1])):
        other = sides[1 - i]
        chosen = algo or (other.algo if other is not None else None)
        sides[i] = resolve_side(ref, store=st, algo=chosen, name=name)
    assert sides[0] is not None and sides[1] is not None
    return diff_fingerprints(sides[0], sides[1])


def _is_path(ref: Any) -> bool:
    return not isinstance(ref, Fingerprint) and os.path.lexists(os.fspath(ref))
