"""What a fingerprint is and how its digests are computed: the hash algorithms, DVC's ``.dir``
digest of a file list, and the :class:`Fingerprint` / :class:`ManifestEntry` values.

Both sides of the data package build on this module: :mod:`replicator.data.fingerprint` walks
and hashes trees into a Fingerprint, :mod:`replicator.data.manifest` stores and loads its file
list and checks a loaded one against its digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .._util.deps import require
from ..errors import UsageError

__all__ = ["ALGORITHMS", "Fingerprint", "ManifestEntry", "dir_digest", "hash_bytes"]

ALGORITHMS = ("blake3", "md5", "xxh3")
"""The hash algorithms a fingerprint can use; md5 gives DVC's digests exactly."""


class ManifestEntry(NamedTuple):
    """One file of a fingerprint: path relative to the root (posix), size in bytes, digest."""

    relpath: str
    size: int
    digest: str


@dataclass(frozen=True)
class Fingerprint:
    """The fingerprint of a file or directory tree.

    Equality compares what the data is (digest, algorithm, sizes, manifest), not how it was
    obtained: a cached and an uncached fingerprint of the same tree are equal.
    """

    digest: str
    algo: str
    size: int
    nfiles: int
    kind: str  # "file" or "dir"
    entries: tuple[ManifestEntry, ...]
    path: Path | None = field(default=None, compare=False)
    manifest_id: str | None = field(default=None, compare=False)
    skipped: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    hashed_files: int = field(default=0, compare=False)
    hashed_bytes: int = field(default=0, compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.algo}:{self.digest}"

    def as_dict(self, *, with_entries: bool = False) -> dict[str, Any]:
        """A JSON-ready view (the CLI's ``--json``)."""
        out: dict[str, Any] = {
            "path": str(self.path) if self.path else None,
            "kind": self.kind,
            "algo": self.algo,
            "digest": self.digest,
            "size": self.size,
            "nfiles": self.nfiles,
            "manifest": self.manifest_id,
            "skipped": [{"relpath": r, "reason": why} for r, why in self.skipped],
            "hashed_files": self.hashed_files,
            "hashed_bytes": self.hashed_bytes,
            "notes": list(self.notes),
        }
        if with_entries:
            out["entries"] = [list(e) for e in self.entries]
        return out


def _hasher(algo: str) -> Any:
    """A fresh hash object of ``algo``; names the extra when its package is missing."""
    if algo == "md5":
        return hashlib.md5(usedforsecurity=False)
    if algo == "blake3":
        from blake3 import blake3

        return blake3()
    if algo == "xxh3":
        return require("xxhash", purpose="--algo xxh3").xxh3_128()
    raise UsageError(f"Unknown hash algorithm '{algo}'; choose one of {', '.join(ALGORITHMS)}.")


def hash_bytes(data: bytes, algo: str) -> str:
    """Hex digest of ``data`` with ``algo``."""
    h = _hasher(algo)
    h.update(data)
    return str(h.hexdigest())


def dir_digest(entries: list[ManifestEntry] | tuple[ManifestEntry, ...], algo: str) -> str:
    """DVC's ``.dir`` digest of sorted entries, for any algorithm (md5 gives DVC's exactly).

    The bytes are those of ``json.dumps([{algo: digest, "relpath": relpath}, ...],
    sort_keys=True)``, written directly with json's own string encoder (twice as fast).
    """
    from json.encoder import encode_basestring_ascii as enc

    if algo < "relpath":  # sort_keys order of the two keys
        parts = [f'{{"{algo}": {enc(e.digest)}, "relpath": {enc(e.relpath)}}}' for e in entries]
    else:
        parts = [f'{{"relpath": {enc(e.relpath)}, "{algo}": {enc(e.digest)}}}' for e in entries]
    return hash_bytes(("[" + ", ".join(parts) + "]").encode("utf-8"), algo) + ".dir"
