"""Manifests in the store: the file list behind a directory fingerprint, content-addressed.

A directory fingerprint's manifest is stored once at
``<store>/objects/<algo>/<digest[:2]>/<digest>.json`` and named by its id ``<algo>/<digest>``
(for example ``blake3/2dad...704b.dir``). The digest already names the content (every relpath
and file digest), so an object is never rewritten, and a loaded object is checked against its
name. The file is plain JSON::

    {"schema": 1, "kind": "dir", "algo": "blake3", "digest": "....dir", "size": 81920000,
     "nfiles": 20000, "entries": [["a/x.bin", 4096, "<digest>"], ...]}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .._util.io import atomic_write, read_json
from ..errors import StoreError, UsageError
from .digest import ALGORITHMS, Fingerprint, ManifestEntry, dir_digest

__all__ = ["load_manifest", "manifest_path", "save_manifest"]


def manifest_path(store_root: str | os.PathLike[str], manifest_id: str) -> Path:
    """``<store>/objects/<algo>/<digest[:2]>/<digest>.json`` for id ``<algo>/<digest>``."""
    algo, _, digest = manifest_id.partition("/")
    if algo not in ALGORITHMS or not digest or "/" in digest or digest.startswith("."):
        raise UsageError(f"'{manifest_id}' is not a manifest id (expected ALGO/DIGEST).")
    return Path(store_root) / "objects" / algo / digest[:2] / f"{digest}.json"


def save_manifest(fp: Fingerprint, store_root: str | os.PathLike[str]) -> str:
    """Store a directory fingerprint's manifest content-addressed; returns its id ``algo/digest``.

    The digest already names the content (paths and file digests), so an existing object is
    never rewritten: a warm re-fingerprint writes nothing.
    """
    manifest_id = f"{fp.algo}/{fp.digest}"
    target = manifest_path(store_root, manifest_id)
    if target.is_file():
        return manifest_id
    target.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "schema": 1,
        "kind": fp.kind,
        "algo": fp.algo,
        "digest": fp.digest,
        "size": fp.size,
        "nfiles": fp.nfiles,
        "entries": [list(e) for e in fp.entries],
    }
    # ensure_ascii: names that are not valid UTF-8 (surrogate escapes) still serialise.
    atomic_write(target, json.dumps(body, separators=(",", ":")) + "\n")
    return manifest_id


def load_manifest(store_root: str | os.PathLike[str], manifest_id: str) -> Fingerprint:
    """A stored manifest as a :class:`Fingerprint` (``path`` None), checked against its id."""
    target = manifest_path(store_root, manifest_id)
    try:
        body = read_json(target)
        entries = tuple(ManifestEntry(str(r), int(s), str(d)) for r, s, d in body["entries"])
        algo = str(body["algo"])
    except FileNotFoundError as exc:
        raise StoreError(
            f"Manifest {manifest_id} is not in the store {store_root} ({target} is missing). "
            "Fingerprint the data again to recreate it."
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(
            f"Manifest {target} is damaged ({exc}); delete it and fingerprint again."
        ) from exc
    digest = dir_digest(entries, algo)
    if f"{algo}/{digest}" != manifest_id:
        raise StoreError(
            f"Manifest {target} does not hash to its name (content {digest}); it is damaged. "
            "Delete it and fingerprint the data again."
        )
    return Fingerprint(
        digest=digest,
        algo=algo,
        size=sum(e.size for e in entries),
        nfiles=len(entries),
        kind="dir",
        entries=entries,
        manifest_id=manifest_id,
    )
