"""``replicator push``: copy finished runs to a remote store, adding only.

A push is a chain of steps, each resumable:

1. one listing of ``done/`` says which runs the remote already holds; they are left alone
   (append-only: a run on the remote is never rewritten), and with nothing new the push ends
   there;
2. a run still running is not pushed (it is skipped with a note; push again once it ended);
3. declared outputs and checkpoint files go to ``objects/`` by the BLAKE3 digest the run recorded
   (one listing of ``objects/`` says which are there; each file is hashed before upload, and
   one that no longer matches its record is left out with a warning);
4. the snapshot refs go as one git bundle per repository (:mod:`.snapshots`);
5. the run directories' files go to ``runs/RUN_ID/``, in batches, and each batch's markers
   ``done/RUN_ID.json`` are written after its files.

A push killed at any point leaves runs without a marker, which readers do not see; the next push
uploads them again and writes their markers.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.hashing import hash_file
from ..capture.git import git_root
from ..checkpoints.info import MANIFEST
from ..errors import GitError
from ..store import RunRecord, Store, StoreLike, read_part
from .location import FORMAT, Remote, open_remote
from .snapshots import bundle_snapshots, snapshot_refs

__all__ = ["PushResult", "object_path", "push"]

# Files of a run directory that stay local: liveness signs and locks of the recording host.
_LOCAL_ONLY = frozenset({"heartbeat", "resume.lock", "pulled.json"})
BATCH_RUNS = 200
"""Runs whose files are uploaded together before their markers are written."""


def object_path(digest: str) -> str:
    """Where an object lives, relative to the remote's (or the store's) root."""
    digest = digest.split(":", 1)[-1]
    return f"objects/{digest[:2]}/{digest}"


@dataclass(frozen=True)
class PushResult:
    """What a push did: runs pushed, already there, skipped (with why), what it uploaded."""

    remote: str
    pushed: tuple[str, ...] = ()
    already: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    files: int = 0
    objects: int = 0
    bytes: int = 0
    warnings: tuple[str, ...] = ()


@dataclass
class _Plan:
    record: RunRecord
    files: dict[str, int] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    snapshot: dict[str, str] | None = None
    repo: Path | None = None


def push(
    remote: str,
    runs: Sequence[str] = (),
    *,
    store: StoreLike = None,
    on_progress: Callable[[str], None] | None = None,
) -> PushResult:
    """Copy the runs ``runs`` (ids, prefixes, names; default: every run) of ``store`` to the
    remote ``remote`` (a name in replicator.yaml's ``remotes:``, a URL or a path).

    Raises :class:`~replicator.errors.RemoteError` when the remote cannot be reached or written;
    what was uploaded before stays and the next push completes it."""
    store = Store.coerce(store)
    say = on_progress or (lambda _message: None)
    target = open_remote(remote, store=store)
    records = store.records() if not runs else [store.get(ref) for ref in runs]
    records = list({r.id: r for r in records}.values())  # a run named twice is pushed once
    done = {
        rel[len("done/") : -len(".json")]
        for rel in target.find("done")
        if rel.endswith(".json") and "/" not in rel[len("done/") :]
    }
    already = tuple(r.id for r in records if r.id in done)
    skipped = tuple(
        (r.id, "still running; push again once it has ended")
        for r in records
        if r.id not in done and r.status == "running"
    )
    todo = [r for r in records if r.id not in done and r.status != "running"]
    if not todo:
        return PushResult(target.shown, already=already, skipped=skipped)
    warnings: list[str] = []
    plans = [_plan(record, warnings) for record in todo]
    say(f"pushing {len(plans)} run(s) to {target.shown}")
    objects, sent = _push_objects(target, plans, warnings)
    with tempfile.TemporaryDirectory(prefix="replicator-push-") as tmp:
        sent += _push_snapshots(target, plans, Path(tmp), warnings)
    files = 0
    for start in range(0, len(plans), BATCH_RUNS):
        batch = plans[start : start + BATCH_RUNS]
        pairs = [(p.sources[rel], f"runs/{p.record.id}/{rel}") for p in batch for rel in p.files]
        target.put(pairs)
        target.write_json({f"done/{p.record.id}.json": _marker(p) for p in batch})
        files += len(pairs)
        sent += sum(size for p in batch for size in p.files.values())
        say(f"pushed {min(start + BATCH_RUNS, len(plans))} of {len(plans)} run(s)")
    return PushResult(
        target.shown,
        pushed=tuple(p.record.id for p in plans),
        already=already,
        skipped=skipped,
        files=files,
        objects=objects,
        bytes=sent,
        warnings=tuple(warnings),
    )


def _plan(record: RunRecord, warnings: list[str]) -> _Plan:
    """What of one run goes where: its files, its checkpoint and output objects, its snapshot."""
    plan = _Plan(record)
    run_dir = record.dir
    manifest = read_part(run_dir / "checkpoints", MANIFEST)
    for entry in manifest.get("checkpoints") or ():
        name, digest = entry.get("file"), entry.get("hash")
        if isinstance(name, str) and isinstance(digest, str) and digest.startswith("blake3:"):
            plan.checkpoints[f"checkpoints/{name}"] = digest.split(":", 1)[1]
    for folder, dirs, names in os.walk(run_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder, name)
            rel = path.relative_to(run_dir).as_posix()
            if name in _LOCAL_ONLY or name.startswith(".") or name.endswith(".tmp"):
                continue
            if rel in plan.checkpoints:
                plan.sources[f"object:{plan.checkpoints[rel]}"] = path
                continue
            try:
                plan.files[rel] = path.stat().st_size
            except OSError:
                continue
            plan.sources[rel] = path
    plan.checkpoints = {
        rel: digest
        for rel, digest in plan.checkpoints.items()
        if f"object:{digest}" in plan.sources
    }
    outputs = read_part(run_dir, "outputs.json")
    cwd = Path(str(record.meta.get("cwd") or run_dir))
    if outputs.get("mode") == "declared":
        for entry in outputs.get("files") or ():
            rel, digest = entry.get("path"), entry.get("blake3")
            if isinstance(rel, str) and isinstance(digest, str):
                plan.outputs[rel] = digest
                # a pulled run's outputs sit in its store's objects/, not in a working tree
                kept = run_dir.parent.parent / object_path(digest)
                path = cwd / rel if (cwd / rel).is_file() or not kept.is_file() else kept
                plan.sources.setdefault(f"object:{digest}", path)
    code = read_part(run_dir, "code.json")
    ref, commit = code.get("snapshot_ref"), code.get("snapshot")
    if isinstance(ref, str) and isinstance(commit, str) and code.get("repo"):
        plan.repo = git_root(str(code["repo"])) if Path(str(code["repo"])).is_dir() else None
        plan.snapshot = {"ref": ref, "commit": commit}
        if plan.repo is None:
            warnings.append(
                f"run {record.id}: its repository {code['repo']} is not here; its code snapshot "
                "was not pushed"
            )
            plan.snapshot = None
    return plan


def _push_objects(target: Remote, plans: list[_Plan], warnings: list[str]) -> tuple[int, int]:
    """Upload the objects the remote lacks, each checked against its recorded digest."""
    wanted: dict[str, Path] = {}
    for plan in plans:
        for key, path in plan.sources.items():
            if key.startswith("object:"):
                wanted.setdefault(key[len("object:") :], path)
    if not wanted:
        return 0, 0
    have = {rel.rsplit("/", 1)[-1]: size for rel, size in target.find("objects").items()}
    pairs: list[tuple[Path, str]] = []
    sent = 0
    for digest, path in sorted(wanted.items()):
        try:
            size = path.stat().st_size
        except OSError:
            warnings.append(f"{path}: gone since the run recorded it; not pushed")
            continue
        if have.get(digest) == size:
            continue
        try:
            actual = hash_file(path)
        except OSError as exc:
            warnings.append(f"{path}: cannot be read ({exc.strerror or exc}); not pushed")
            continue
        if actual != digest:
            warnings.append(f"{path}: changed since the run recorded it; not pushed")
            continue
        pairs.append((path, object_path(digest)))
        sent += size
    target.put(pairs, whole=True)
    return len(pairs), sent


def _push_snapshots(target: Remote, plans: list[_Plan], folder: Path, warnings: list[str]) -> int:
    """One bundle per repository with the snapshot refs of the pushed runs."""
    by_repo: dict[Path, list[_Plan]] = {}
    for plan in plans:
        if plan.snapshot is not None and plan.repo is not None:
            by_repo.setdefault(plan.repo, []).append(plan)
    have = target.find("snapshots") if by_repo else {}
    sent = 0
    for repo, group in by_repo.items():
        present = snapshot_refs(repo)
        kept = []
        for plan in group:
            assert plan.snapshot is not None
            if present.get(plan.snapshot["ref"]) == plan.snapshot["commit"]:
                kept.append(plan)
            else:
                warnings.append(
                    f"run {plan.record.id}: snapshot ref {plan.snapshot['ref']} is gone from "
                    f"{repo}; its code snapshot was not pushed"
                )
                plan.snapshot = None
        if not kept:
            continue
        try:
            bundle = bundle_snapshots(
                repo, sorted({p.snapshot["ref"] for p in kept if p.snapshot}), folder
            )
        except GitError as exc:
            warnings.append(f"code snapshots of {repo} not pushed: {exc}")
            for plan in kept:
                plan.snapshot = None
            continue
        if bundle.name not in have:
            target.put([(bundle.path, bundle.name)], whole=True)
            sent += bundle.path.stat().st_size
        for plan in kept:
            assert plan.snapshot is not None
            plan.snapshot["bundle"] = bundle.name
    return sent


def _marker(plan: _Plan) -> dict[str, Any]:
    """``done/RUN_ID.json``: what ``ls --remote`` shows and what a pull fetches."""
    record = plan.record
    return {
        "format": FORMAT,
        "id": record.id,
        "experiment": record.experiment,
        "name": record.name,
        "status": record.status,
        "seed": record.seed,
        "started": record.started,
        "ended": record.ended,
        "exit_code": record.meta.get("exit_code"),
        "command": record.meta.get("command"),
        "config": record.config,
        "summary": record.summary,
        "files": plan.files,
        "checkpoints": plan.checkpoints,
        "outputs": plan.outputs,
        "snapshot": plan.snapshot,
        "pushed": {"time": time.time(), "host": socket.gethostname(), "run_dir": str(record.dir)},
    }
