"""DVC compatibility: read ``.dvc`` files and ``dvc.lock``, and verify data against them or a run.

DVC 3 entries (``hash: md5``) hold the md5 of a file's raw bytes, or for a directory the md5 of
its ``.dir`` listing plus ``.dir``: exactly what ``fingerprint(path, algo="md5")`` computes, so
these checks use the stat cache. Entries without ``hash:`` come from DVC 2 and use the legacy
``md5-dos2unix``: a file whose first 512 bytes hold no NUL and at most 30% non-printable bytes is
text, and text is hashed with every ``\\r\\n`` (within each 1 MiB read) replaced by ``\\n``. DVC 2
decided text-ness once per file; dvc-data 3 (used by DVC 3 to read old entries) decides it per
1 MiB chunk, so the two can differ for text files over 1 MiB whose later chunks look binary; we
follow DVC 2, which wrote those entries. Legacy entries are always re-hashed (no cache).

Paths in a ``.dvc`` file or ``dvc.lock`` are taken relative to the file's directory (a stage's
``wdir:`` in dvc.yaml is not read). ``.dvcignore`` files are not applied. When a directory
differs, the files that changed are listed if its ``.dir`` listing is in the DVC cache
(``.dvc/cache/files/md5/`` for DVC 3, ``.dvc/cache/`` for DVC 2).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import ReplicatorError, RunNotFoundError, UsageError
from ..store import Store, StoreLike
from .diff import DataDiff, _pick, diff_fingerprints, run_datasets
from .digest import Fingerprint, ManifestEntry, dir_digest
from .fingerprint import fingerprint
from .hashing import _os_error, _walk
from .manifest import load_manifest

__all__ = ["DvcEntry", "EntryCheck", "VerifyReport", "legacy_md5", "read_dvc_file", "verify"]

TEXT_CHARS = bytes(range(32, 127)) + b"\n\r\t\f\b"
LEGACY_CHUNK = 1 << 20


def _is_text(block: bytes) -> bool:
    if not block:
        return True
    if b"\x00" in block:
        return False
    return len(block.translate(None, TEXT_CHARS)) / len(block) <= 0.30


def legacy_md5(path: str | os.PathLike[str]) -> str:
    """DVC 2's ``md5-dos2unix`` of a file (see the module docstring)."""
    h = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as f:
            text = _is_text(f.read(512))
            f.seek(0)
            while chunk := f.read(LEGACY_CHUNK):
                h.update(chunk.replace(b"\r\n", b"\n") if text else chunk)
    except OSError as exc:
        raise _os_error(exc, os.fspath(path), "read") from exc
    return h.hexdigest()


def _legacy_fingerprint(path: Path) -> Fingerprint:
    if path.is_dir():
        files, _ = _walk(str(path), exclude=None)
        entries = tuple(
            sorted(
                (ManifestEntry(f.relpath, f.st.st_size, legacy_md5(f.abspath)) for f in files),
                key=lambda e: e.relpath,
            )
        )
        digest, kind = dir_digest(entries, "md5"), "dir"
    else:
        entries = (ManifestEntry(path.name, path.stat().st_size, legacy_md5(path)),)
        digest, kind = entries[0].digest, "file"
    return Fingerprint(
        digest=digest,
        algo="md5",
        size=sum(e.size for e in entries),
        nfiles=len(entries),
        kind=kind,
        entries=entries,
        path=path,
    )


@dataclass(frozen=True)
class DvcEntry:
    """One hashed path of a ``.dvc`` file or ``dvc.lock``."""

    source: str  # "dvc.lock: stages.train.deps[0]"
    path: Path  # absolute
    md5: str
    legacy: bool  # DVC 2 md5-dos2unix
    size: int | None
    nfiles: int | None


def read_dvc_file(file: str | os.PathLike[str]) -> list[DvcEntry]:
    """The hashed entries of a ``.dvc`` file or a ``dvc.lock``."""
    import yaml

    path = Path(file)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(
            f"{path}: no such file. Give a dvc.lock, a .dvc file or a run id."
        ) from exc
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: cannot be read as YAML ({exc}).") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: not a .dvc file or dvc.lock (expected a mapping).")
    base = path.resolve().parent
    groups: list[tuple[str, Any]] = []
    if "outs" in doc or "deps" in doc:  # a .dvc file
        groups = [(key, doc.get(key)) for key in ("deps", "outs")]
    else:
        stages = doc.get("stages", doc if "schema" not in doc else {})
        if not isinstance(stages, dict):
            raise UsageError(f"{path}: 'stages' must be a mapping.")
        for stage, body in stages.items():
            if isinstance(body, dict):
                groups += [(f"stages.{stage}.{key}", body.get(key)) for key in ("deps", "outs")]
    entries = []
    for where, items in groups:
        for i, item in enumerate(items or []):
            if not isinstance(item, dict) or "md5" not in item or "path" not in item:
                continue  # remote outputs (etag, checksum) and params carry no md5
            hash_name = item.get("hash")
            entries.append(
                DvcEntry(
                    source=f"{path.name}: {where}[{i}]",
                    path=(base / str(item["path"])).resolve(),
                    md5=str(item["md5"]),
                    legacy=hash_name is None or hash_name == "md5-dos2unix",
                    size=item.get("size"),
                    nfiles=item.get("nfiles"),
                )
            )
    return entries


def _dvc_dir_listing(start: Path, md5: str) -> Fingerprint | None:
    """The ``.dir`` listing of ``md5`` from the DVC cache of the repo above ``start``."""
    for folder in (start, *start.parents):
        cache = folder / ".dvc" / "cache"
        if not cache.is_dir():
            continue
        for candidate in (cache / "files" / "md5" / md5[:2] / md5[2:], cache / md5[:2] / md5[2:]):
            try:
                listing = json.loads(candidate.read_text(encoding="utf-8"))
                entries = tuple(ManifestEntry(d["relpath"], 0, d["md5"]) for d in listing)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            return Fingerprint(
                digest=md5, algo="md5", size=0, nfiles=len(entries), kind="dir", entries=entries
            )
        return None
    return None


@dataclass(frozen=True)
class EntryCheck:
    """The verdict for one entry: ``match``, ``differ`` or ``missing``."""

    name: str
    path: Path
    algo: str
    expected: str
    actual: str | None
    status: str
    diff: DataDiff | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "algo": self.algo,
            "expected": self.expected,
            "actual": self.actual,
            "status": self.status,
            "diff": self.diff.as_dict() if self.diff else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class VerifyReport:
    """The result of :func:`verify`; ``ok`` when every entry matches."""

    against: str
    checks: tuple[EntryCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.status == "match" for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "ok": self.ok,
            "checks": [c.as_dict() for c in self.checks],
        }


def _sized(expected: Fingerprint, actual: Fingerprint) -> Fingerprint:
    """DVC's .dir listings carry no sizes: borrow them from the current files where known."""
    sizes = {e.relpath: e.size for e in actual.entries}
    entries = tuple(
        ManifestEntry(e.relpath, sizes.get(e.relpath, 0), e.digest) for e in expected.entries
    )
    return Fingerprint(
        digest=expected.digest,
        algo=expected.algo,
        size=sum(e.size for e in entries),
        nfiles=len(entries),
        kind=expected.kind,
        entries=entries,
    )


def _check_dvc_entry(entry: DvcEntry, store: Store) -> EntryCheck:
    algo = "md5-dos2unix" if entry.legacy else "md5"
    name = entry.source
    if not os.path.lexists(entry.path):
        return EntryCheck(
            name, entry.path, algo, entry.md5, None, "missing", note="path does not exist"
        )
    actual = (
        _legacy_fingerprint(entry.path)
        if entry.legacy
        else fingerprint(entry.path, algo="md5", store=store)
    )
    if actual.digest == entry.md5:
        return EntryCheck(name, entry.path, algo, entry.md5, actual.digest, "match")
    differ = partial(EntryCheck, name, entry.path, algo, entry.md5, actual.digest, "differ")
    if not entry.md5.endswith(".dir"):
        return differ()
    listing = _dvc_dir_listing(entry.path.parent, entry.md5)
    if listing is None:
        return differ(
            note="the .dir listing is not in the DVC cache, so changed files cannot be listed"
        )
    return differ(diff=diff_fingerprints(_sized(listing, actual), actual))


def _check_record(name: str, record: dict[str, Any], path: Path, store: Store) -> EntryCheck:
    algo = str(record.get("algo", "blake3"))
    expected = str(record.get("digest"))
    if not os.path.lexists(path):
        return EntryCheck(name, path, algo, expected, None, "missing", note="path does not exist")
    actual = fingerprint(path, algo=algo, store=store)
    if actual.digest == expected:
        return EntryCheck(name, path, algo, expected, actual.digest, "match")
    differ = partial(EntryCheck, name, path, algo, expected, actual.digest, "differ")
    if not record.get("manifest"):
        return differ()
    try:
        old = load_manifest(store.root, str(record["manifest"]))
    except ReplicatorError as exc:
        return differ(note=str(exc))
    return differ(diff=diff_fingerprints(old, actual))


def _covers(selected: Path | None, target: Path) -> bool:
    if selected is None:
        return True
    return selected == target or selected in target.parents or target in selected.parents


def verify(
    path: str | os.PathLike[str] | None = None,
    *,
    against: str | os.PathLike[str],
    store: StoreLike = None,
    name: str | None = None,
) -> VerifyReport:
    """Check data against a ``dvc.lock``, a ``.dvc`` file or a run's recorded datasets.

    ``path`` restricts the check to the entries at or under it. Against a run, ``path`` is
    checked instead of the dataset's recorded location: the dataset recorded at ``path``, else
    the one called ``name``, else the run's only dataset.
    """
    st = Store.coerce(store)
    ref = os.fspath(against)
    selected = Path(path).resolve() if path is not None else None
    as_file = Path(ref)
    dvc_like = as_file.name == "dvc.lock" or as_file.suffix in (".dvc", ".lock", ".yaml", ".yml")
    if as_file.is_file() and dvc_like:
        entries = [e for e in read_dvc_file(as_file) if _covers(selected, e.path)]
        if not entries:
            where = f" at or under {path}" if path is not None else ""
            raise UsageError(f"{ref} has no hashed entries{where}; nothing to verify.")
        return VerifyReport(ref, tuple(_check_dvc_entry(e, st) for e in entries))
    if dvc_like:
        raise UsageError(f"{ref}: no such file. Give a dvc.lock, a .dvc file or a run id.")
    run_id, data = run_datasets(
        st,
        ref,
        not_a_run=f"--against '{ref}' is neither a dvc.lock/.dvc file nor a run",
        error=RunNotFoundError,
    )
    if not data:
        raise UsageError(f"Run {run_id} recorded no datasets; nothing to verify.")
    if name is not None:
        data = {name: _pick(data, name, f"Run {run_id}")}
    if selected is not None:
        matching = {n: r for n, r in data.items() if Path(str(r.get("abspath", ""))) == selected}
        if not matching:
            record = _pick(data, None, f"Run {run_id}")
            matching = {n: r for n, r in data.items() if r is record}
        checks = [_check_record(n, r, selected, st) for n, r in matching.items()]
    else:
        checks = [_check_record(n, r, _record_path(r, st), st) for n, r in sorted(data.items())]
    return VerifyReport(f"run {run_id}", tuple(checks))


def _record_path(record: dict[str, Any], store: Store) -> Path:
    if record.get("abspath"):
        return Path(str(record["abspath"]))
    return (store.project_root / str(record.get("path", ""))).resolve()
