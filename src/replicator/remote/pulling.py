"""``replicator pull``: copy complete runs from a remote store into the local store.

Only runs with a marker (``done/RUN_ID.json``) are pulled, and only those the store lacks (a
pull adds, like a push). Each run is downloaded into a hidden folder of ``runs/`` (readers skip
it), its checkpoint files are fetched from ``objects/`` and checked against their digests, a
``pulled.json`` says where it came from, and the folder is renamed into place: a run appears
whole or not at all. Declared outputs go to the store's own ``objects/AB/DIGEST`` (the working
tree is never written), and the runs' snapshot refs are fetched from their bundles into the
project's repository, so that ``replicator reproduce`` finds the code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.hashing import hash_file
from .._util.io import atomic_write_json
from ..capture.git import git_root
from ..errors import RemoteError, RunNotFoundError
from ..store import Store, StoreLike
from .location import Remote, open_remote
from .pushing import object_path
from .snapshots import fetch_snapshots

__all__ = ["PullResult", "pull", "read_markers"]


@dataclass(frozen=True)
class PullResult:
    """What a pull did: runs pulled, runs the store already had, what it downloaded."""

    remote: str
    pulled: tuple[str, ...] = ()
    already: tuple[str, ...] = ()
    objects: int = 0
    warnings: tuple[str, ...] = ()


def read_markers(target: Remote, refs: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """``{run id: marker}`` of the complete runs on the remote (those ``refs`` name: ids,
    unique prefixes or suffixes), in one listing and one batch of reads."""
    ids = sorted(
        rel[len("done/") : -len(".json")]
        for rel in target.find("done")
        if rel.endswith(".json") and "/" not in rel[len("done/") :]
    )
    if refs:
        ids = sorted({_match(ref, ids, target.shown) for ref in refs})
    bodies = target.cat([f"done/{run_id}.json" for run_id in ids])
    markers: dict[str, dict[str, Any]] = {}
    for run_id in ids:
        body = bodies.get(f"done/{run_id}.json")
        try:
            marker = json.loads(body) if body is not None else None
        except ValueError:
            marker = None
        if isinstance(marker, dict) and marker.get("id") == run_id:
            markers[run_id] = marker
    return markers


def _match(ref: str, ids: list[str], shown: str) -> str:
    if ref in ids:
        return ref
    found = [i for i in ids if i.startswith(ref) or i.endswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise RunNotFoundError(
            f"No run '{ref}' on remote {shown}. `replicator ls --remote {shown}` lists them."
        )
    raise RunNotFoundError(f"'{ref}' matches {len(found)} runs on {shown}; give more of the id.")


def pull(
    remote: str,
    runs: Sequence[str] = (),
    *,
    store: StoreLike = None,
    on_progress: Callable[[str], None] | None = None,
) -> PullResult:
    """Copy the complete runs ``runs`` (default: all) of ``remote`` into ``store``.

    Raises :class:`~replicator.errors.RemoteError` when the remote cannot be reached or read;
    runs already renamed into place stay, and the next pull fetches the rest."""
    store = Store.coerce(store)
    say = on_progress or (lambda _message: None)
    source = open_remote(remote, store=store)
    markers = read_markers(source, runs)
    already = tuple(i for i in markers if (store.runs_dir / i).exists())
    todo = [m for i, m in markers.items() if i not in already]
    if not todo:
        return PullResult(source.shown, already=already)
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    objects = _pull_outputs(source, store, todo, warnings)
    pulled: list[str] = []
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=store.runs_dir) as tmp:
        staging = Path(tmp)
        _pull_run_files(source, staging, todo)
        _pull_snapshots(source, store, staging / ".bundles", todo, warnings)
        for marker in todo:
            if _place(source, store, staging / marker["id"], marker, warnings):
                pulled.append(marker["id"])
        say(f"pulled {len(pulled)} run(s) from {source.shown}")
    return PullResult(
        source.shown,
        pulled=tuple(pulled),
        already=already,
        objects=objects,
        warnings=tuple(warnings),
    )


def _files(marker: dict[str, Any]) -> dict[str, int]:
    files = marker.get("files")
    if not isinstance(files, dict):
        raise RemoteError(f"Marker of run {marker.get('id')} lists no files; push it again.")
    return {str(rel): int(size) for rel, size in files.items() if _safe(str(rel))}


def _safe(rel: str) -> bool:
    """A relative path that stays inside the run directory."""
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and ".." not in parts and "" not in parts


def _pull_run_files(source: Remote, staging: Path, todo: list[dict[str, Any]]) -> None:
    pairs: list[tuple[str, Path]] = []
    for marker in todo:
        run_id = marker["id"]
        pairs += [(f"runs/{run_id}/{rel}", staging / run_id / rel) for rel in _files(marker)]
        for rel, digest in (marker.get("checkpoints") or {}).items():
            if _safe(str(rel)):
                pairs.append((object_path(str(digest)), staging / run_id / str(rel)))
    source.get(pairs)


def _pull_outputs(
    source: Remote, store: Store, todo: list[dict[str, Any]], warnings: list[str]
) -> int:
    """Declared outputs into the store's ``objects/``, each checked against its digest."""
    wanted = {str(d) for m in todo for d in (m.get("outputs") or {}).values()}
    missing = [d for d in sorted(wanted) if not (store.root / object_path(d)).is_file()]
    if not missing:
        return 0
    on_remote = {rel.rsplit("/", 1)[-1] for rel in source.find("objects")}
    fetched = []
    for digest in missing:
        if digest not in on_remote:
            warnings.append(f"output object {digest[:12]} is not on {source.shown}; left out")
        else:
            fetched.append(digest)
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=store.root) as tmp:
        pairs = [(object_path(d), Path(tmp, d)) for d in fetched]
        source.get(pairs)
        for digest in fetched:
            got = Path(tmp, digest)
            if hash_file(got) != digest:
                warnings.append(f"output object {digest[:12]} is damaged on {source.shown}")
                continue
            final = store.root / object_path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(got, final)
    return len(fetched)


def _pull_snapshots(
    source: Remote, store: Store, folder: Path, todo: list[dict[str, Any]], warnings: list[str]
) -> None:
    """Fetch the pulled runs' snapshot refs into the project's repository."""
    by_bundle: dict[str, list[str]] = {}
    for marker in todo:
        snapshot = marker.get("snapshot")
        if isinstance(snapshot, dict) and snapshot.get("bundle") and snapshot.get("ref"):
            by_bundle.setdefault(str(snapshot["bundle"]), []).append(str(snapshot["ref"]))
    if not by_bundle:
        return
    repo = git_root(store.project_root)
    if repo is None:
        warnings.append(
            f"{store.project_root} is not in a git repository: the runs' code snapshots were "
            "not fetched (reproduce needs them)"
        )
        return
    source.get([(name, folder / name.rsplit("/", 1)[-1]) for name in by_bundle])
    for name, refs in by_bundle.items():
        problem = fetch_snapshots(repo, folder / name.rsplit("/", 1)[-1], refs)
        if problem:
            warnings.append(f"code snapshots from {name}: {problem}")


def _place(
    source: Remote, store: Store, staged: Path, marker: dict[str, Any], warnings: list[str]
) -> bool:
    """Check a downloaded run and rename it into ``runs/``; False when another took its place."""
    run_id = marker["id"]
    for rel, digest in (marker.get("checkpoints") or {}).items():
        path = staged / str(rel)
        if path.is_file() and hash_file(path) != str(digest):
            warnings.append(f"run {run_id}: checkpoint {rel} is damaged on {source.shown}")
    pushed = marker.get("pushed")
    pushed = pushed if isinstance(pushed, dict) else {}
    atomic_write_json(
        staged / "pulled.json",
        {
            "remote": source.shown,
            "time": time.time(),
            "host": pushed.get("host"),
            "run_dir": pushed.get("run_dir"),
        },
    )
    try:
        os.rename(staged, store.runs_dir / run_id)
    except OSError:
        if (store.runs_dir / run_id).exists():
            shutil.rmtree(staged, ignore_errors=True)
            return False
        raise
    return True
