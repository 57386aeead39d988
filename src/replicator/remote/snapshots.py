"""The runs' code snapshots on a remote: git bundles of ``refs/replicator/snapshots/RUN_ID``.

A push writes one bundle per repository with the snapshot refs of the runs it pushes. Commits
already on one of the repository's git remotes (``--not --remotes``) stay out: a team shares
those through its git server, and the bundle then needs them (its prerequisites) where it is
pulled. A pull fetches the refs of the runs it pulls from their bundles into the project's
repository, so that ``replicator reproduce`` finds the snapshot there.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .._util.hashing import hash_file
from ..capture.git import SNAPSHOT_REF_PREFIX, git
from ..errors import GitError

__all__ = ["Bundle", "bundle_snapshots", "fetch_snapshots", "snapshot_refs"]


@dataclass(frozen=True)
class Bundle:
    """A bundle written for a push: the local file, its name on the remote, the refs it holds."""

    path: Path
    name: str
    refs: tuple[str, ...]


def snapshot_refs(repo: Path) -> dict[str, str]:
    """``{ref: commit}`` of every snapshot ref of ``repo``, in one git call ({} outside git)."""
    try:
        out = git(
            repo, "for-each-ref", "--format=%(refname) %(objectname)", SNAPSHOT_REF_PREFIX
        ).text
    except (GitError, OSError):
        return {}
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def bundle_snapshots(repo: Path, refs: list[str], folder: Path) -> Bundle:
    """One bundle of ``refs`` of ``repo`` in ``folder``, without what the git remotes hold.

    Named by its BLAKE3 digest, so equal bundles share one object on the remote."""
    fd, name = tempfile.mkstemp(prefix="snapshots-", suffix=".bundle", dir=folder)
    os.close(fd)
    path = Path(name)
    shared = git(repo, "for-each-ref", "--format=%(objectname)", "refs/remotes/").text.split()
    stdin = ("\n".join([*refs, *(f"^{commit}" for commit in sorted(set(shared)))]) + "\n").encode()
    git(repo, "bundle", "create", "-q", os.fspath(path), "--stdin", input=stdin)
    return Bundle(path, f"snapshots/{hash_file(path)}.bundle", tuple(refs))


def fetch_snapshots(repo: Path, bundle: Path, refs: list[str]) -> str | None:
    """Fetch ``refs`` from ``bundle`` into ``repo`` under the same names; None when done, else
    why not (say, the bundle needs commits the repository lacks)."""
    specs = [f"+{ref}:{ref}" for ref in refs]
    try:
        proc = git(repo, "fetch", "--quiet", "--no-tags", os.fspath(bundle), *specs, check=False)
    except OSError as exc:
        return str(exc)
    if proc.ok:
        return None
    message = " ".join(proc.message.split())
    if "prerequisite" in message or "lacks these prerequisite" in message:
        return (
            f"the bundle needs commits this repository lacks ({message[:200]}); fetch the "
            "project's git remote first, then pull again"
        )
    return message[:300]
