"""Fingerprints of files and directory trees: digest, size, file count and a manifest.

A directory's fingerprint follows DVC 3 exactly, generalised to other algorithms: every regular
file is hashed, the entries ``{"<algo>": <hex>, "relpath": <posix path>}`` are sorted by
``relpath`` as Python strings, serialised with ``json.dumps(entries, sort_keys=True)`` and hashed
with the same algorithm; the digest gets the suffix ``.dir``. With ``algo="md5"`` the result is
byte for byte DVC's ``.dir`` md5 (and a file's digest its DVC md5), so it compares directly with a
``.dvc`` file or ``dvc.lock``. BLAKE3 is the default because it is 8-10x faster.

What is walked (as DVC does): regular files and symlinks to regular files. Not followed: symlinks
to directories (listed in ``skipped``). Ignored: directories named ``.git``, ``.hg`` and ``.dvc``,
files named ``.git``, and the replicator store if it lies inside the tree. Empty directories
contribute nothing. FIFOs, sockets and devices are skipped and listed in ``skipped`` (reading a
FIFO would block forever). Broken symlinks, symlink loops, unreadable files and files that change
while being hashed raise :class:`FingerprintError` — never a silently wrong digest.

Speed: one ``scandir`` walk with one ``stat`` per file; files whose stat matches the store's
stat cache (:mod:`replicator.data.cache`) are not read at all. Files to hash are split by size:
large ones are hashed one at a time, BLAKE3 through a memory map with all cores, md5/xxh3 through
one reused buffer; many small ones go to worker processes, a few to a plain loop (threads are
slower than a loop for small cached files).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import FingerprintError, ReplicatorError, UsageError
from .digest import ALGORITHMS, Fingerprint, ManifestEntry, _hasher, dir_digest, hash_bytes
from .hashing import _File, _hash_many, _kind, _os_error, _stat_key, _walk
from .manifest import save_manifest

if TYPE_CHECKING:
    from .._util.progress import Progress
    from ..store import Store, StoreLike

__all__ = [
    "ALGORITHMS",
    "Fingerprint",
    "FingerprintError",
    "ManifestEntry",
    "dir_digest",
    "fingerprint",
    "hash_bytes",
]


# --------------------------------------------------------------------------- the public function
def fingerprint(
    path: str | os.PathLike[str],
    *,
    algo: str = "blake3",
    store: StoreLike = None,
    use_cache: bool = True,
    keep_manifest: bool = True,
    progress: Progress | None = None,
) -> Fingerprint:
    """Fingerprint a file or directory tree.

    ``store`` (default: the store of the working directory, :meth:`Store.open`) holds the stat
    cache and, for directories, the manifest, saved content-addressed under
    ``objects/<algo>/<digest[:2]>/<digest>.json`` (see :mod:`replicator.data.manifest`).
    ``use_cache=False`` hashes every file (and still refreshes the cache). ``progress``
    receives the byte total and increments (see :mod:`replicator._util.progress`).

    Example::

        fp = fingerprint("data/")             # blake3, cached
        fp.digest, fp.size, fp.nfiles          # 'e3b0...dir', 81920000, 20000
        fingerprint("data/", algo="md5").digest   # equals the md5 in data.dvc
    """
    from .._util.progress import NullProgress
    from .cache import now_ns

    if algo not in ALGORITHMS:
        raise UsageError(f"Unknown hash algorithm '{algo}'; choose one of {', '.join(ALGORITHMS)}.")
    _hasher(algo)  # fail early on a missing optional package
    root = _resolve(Path(path))
    sink: Progress = progress if progress is not None else NullProgress()
    store_obj = _open_store(store)
    started = now_ns()
    files, skipped, kind = _list_files(root, path, store_obj)
    hashed = _hash_files(
        files,
        root=root,
        kind=kind,
        algo=algo,
        store=store_obj,
        use_cache=use_cache,
        sink=sink,
        started=started,
    )
    digest, entries = hashed.digest, hashed.entries
    read = {f.relpath for f in hashed.todo}
    fp = Fingerprint(
        digest=digest,
        algo=algo,
        size=sum(e.size for e in entries),
        nfiles=len(entries),
        kind=kind,
        entries=entries,
        path=root,
        skipped=tuple(skipped),
        hashed_files=len(hashed.todo),
        hashed_bytes=sum(e.size for e in entries if e.relpath in read) if read else 0,
        notes=tuple(hashed.notes),
    )
    if kind == "dir" and keep_manifest and store_obj is not None:
        return _with_manifest(fp, store_obj)
    return fp


def _resolve(given: Path) -> Path:
    if not os.path.lexists(given):
        raise UsageError(
            f"{given}: no such file or directory. Check the path (relative to {os.getcwd()})."
        )
    try:
        return given.resolve(strict=True)
    except OSError as exc:
        raise _os_error(exc, str(given), "resolve") from exc


def _list_files(
    root: Path, given: str | os.PathLike[str], store: Store | None
) -> tuple[list[_File], list[tuple[str, str]], str]:
    """(files, skipped, kind): the files to fingerprint under ``root`` (or root itself)."""
    if root.is_dir():
        exclude = str(store.root) if store is not None else None
        files, skipped = _walk(str(root), exclude=exclude)
        return files, skipped, "dir"
    if root.is_file():
        return [_File(root.name, str(root), root.stat())], [], "file"
    raise UsageError(
        f"{Path(given)} is a {_kind(root.stat().st_mode)}, not a file or directory; "
        "fingerprint the data it provides instead."
    )


class _Hashed(NamedTuple):
    digest: str  # of the file, or the tree's .dir digest
    entries: tuple[ManifestEntry, ...]  # sorted by relpath
    todo: list[_File]  # the files read (not answered by the stat cache)
    notes: list[str]  # what the stat cache had to say


def _hash_files(
    files: list[_File],
    *,
    root: Path,
    kind: str,
    algo: str,
    store: Store | None,
    use_cache: bool,
    sink: Progress,
    started: int,
) -> _Hashed:
    """Digests of ``files``: the tree's row when its listing is unchanged, else fresh stat-cache
    rows where they match, else hashed (and cached)."""
    from .cache import StatCache, cache_path, is_fresh, tree_signature

    def cache_key(f: _File) -> str:
        return f.abspath if kind == "file" else str(root) + "/" + f.relpath

    cache = StatCache(cache_path(store.root)) if store is not None else None
    try:
        if cache is not None and use_cache and kind == "dir":
            listing = [
                (rel, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) for rel, _, st in files
            ]
            signature = tree_signature(listing)
            tree = cache.get_tree(str(root), algo, signature) if signature else None
            if tree is not None:
                entries = tuple(map(ManifestEntry._make, tree[1]))
                return _Hashed(tree[0], entries, [], list(cache.notes))
        cached: dict[str, Any] = {}
        if cache is not None and use_cache:
            if kind == "dir":
                cached = cache.load_tree(str(root), algo)
            else:
                row = cache.get(str(root), algo)
                cached = {str(root): row} if row else {}
        digests: dict[str, str] = {}
        sizes: dict[str, int] = {}
        todo: list[_File] = []
        matched = 0
        for f in files:
            row = cached.get(cache_key(f))
            matched += row is not None
            if row is not None and is_fresh(row, f.st):
                digests[f.relpath] = row[4]
                sizes[f.relpath] = f.st.st_size
            else:
                todo.append(f)
        sink.set_total(sum(f.st.st_size for f in todo))
        hashed = _hash_many(todo, algo, started, sink)
        new_rows = []
        keys: dict[str, tuple[int, int, int, int]] = {}
        for f in todo:
            digest, st = hashed[f.relpath]
            key = keys[f.relpath] = _stat_key(st)
            digests[f.relpath] = digest
            sizes[f.relpath] = key[1]
            new_rows.append((cache_key(f), (*key, digest, started)))
        entries = tuple(ManifestEntry(rel, sizes[rel], digests[rel]) for rel in sorted(digests))
        answer = dir_digest(entries, algo) if kind == "dir" else entries[0].digest
        if cache is None:
            return _Hashed(answer, entries, todo, [])
        gone: list[str] = []
        if kind == "dir" and matched < len(cached):  # rows of files since deleted
            seen = {str(root) + "/" + f.relpath for f in files}
            gone = [p for p in cached if p not in seen]
        settled = _tree_signature_if_settled(files, keys, started) if kind == "dir" else None
        whole = None if settled is None else (str(root), settled, answer, entries)
        cache.put_many(algo, new_rows, forget=gone, tree=whole)
        return _Hashed(answer, entries, todo, list(cache.notes))
    finally:
        if cache is not None:
            cache.close()


def _tree_signature_if_settled(
    files: list[_File], keys: dict[str, tuple[int, int, int, int]], started: int
) -> str | None:
    """The signature to remember the whole tree by, or None while a file of it is racily new
    (see :mod:`replicator.data.cache`). Each file is listed with the stat its digest belongs
    to: ``keys`` for the files just hashed, else the walk's; in walk order, as the next walk
    will list them."""
    from .cache import RACY_WINDOW_NS, newest_change_ns, tree_signature

    listing = [(f.relpath, *(keys.get(f.relpath) or _stat_key(f.st))) for f in files]
    if newest_change_ns(listing) >= started - RACY_WINDOW_NS:
        return None
    return tree_signature(listing)


def _with_manifest(fp: Fingerprint, store: Store) -> Fingerprint:
    """``fp`` with the id of its manifest saved in ``store`` (or a note saying why not)."""
    try:
        manifest_id = save_manifest(fp, store.root)
    except OSError as exc:
        note = f"manifest not saved in {store.root} ({exc}); diffs will lack it"
        return _replace(fp, notes=(*fp.notes, note))
    return _replace(fp, manifest_id=manifest_id)


def _replace(fp: Fingerprint, **changes: Any) -> Fingerprint:
    from dataclasses import replace

    return replace(fp, **changes)


def _open_store(store: StoreLike) -> Store | None:
    from ..store import Store

    if store is not None:
        return Store.coerce(store)
    try:
        return Store.open()
    except ReplicatorError:
        return None
