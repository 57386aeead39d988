"""Check out a run's code snapshot somewhere else, never touching the user's working tree.

The snapshot commit (``code.json`` ``snapshot``, kept alive by ``refs/replicator/snapshots/ID``)
is checked out with ``git worktree add --detach`` into a temporary directory. When the snapshot
object is gone (the repository was cloned again), the recorded commit is checked out and the
stored ``code.patch`` applied; when the repository itself is gone, its recorded remote is cloned
first. The resulting tree is compared with the recorded snapshot tree, so a checkout that differs
from what ran is reported, not hidden.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..capture.git import git
from ..errors import ReproduceError

__all__ = ["Checkout", "checkout_code", "checkout_commit"]


def _has_commit(repo: Path, rev: str | None) -> bool:
    if not rev or not repo.is_dir():
        return False
    return git(repo, "cat-file", "-e", f"{rev}^{{commit}}", check=False).ok


@dataclass(frozen=True)
class Checkout:
    """A checked-out copy of recorded code: ``root`` maps paths of the original ``repo``."""

    root: Path
    repo: Path
    commit: str
    tree: str
    method: str  # "snapshot", "commit", "commit+patch" or "clone+patch"
    recorded_tree: str | None = None
    changed_files: tuple[str, ...] = ()

    @property
    def matches_record(self) -> bool:
        return self.recorded_tree is None or self.recorded_tree == self.tree

    def path_for(self, original: str | os.PathLike[str]) -> Path:
        """The checkout's counterpart of a path under the original repository."""
        path = Path(original)
        try:
            return self.root / path.resolve().relative_to(self.repo.resolve())
        except ValueError:
            return path

    def contains(self, original: str | os.PathLike[str]) -> bool:
        try:
            Path(original).resolve().relative_to(self.repo.resolve())
        except ValueError:
            return False
        return True

    def remove(self) -> None:
        """Delete the checkout (and its worktree registration in the original repository)."""
        if self.method in ("snapshot", "commit", "commit+patch") and self.repo.is_dir():
            git(self.repo, "worktree", "remove", "--force", str(self.root), check=False)
            git(self.repo, "worktree", "prune", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _worktree(repo: Path, rev: str, dest: Path) -> None:
    proc = git(repo, "worktree", "add", "--detach", "--quiet", str(dest), rev, check=False)
    if not proc.ok:
        raise ReproduceError(
            "checkout", f"git worktree add of {rev[:12]} in {repo} failed: {proc.message}"
        )


def _apply_patch(root: Path, patch: Path, commit: str) -> None:
    if not patch.is_file() or patch.stat().st_size == 0:
        return
    proc = git(root, "apply", "--binary", "--whitespace=nowarn", str(patch), check=False)
    if not proc.ok:
        raise ReproduceError(
            "checkout",
            f"patch conflict: the stored {patch} does not apply to commit {commit[:12]} "
            f"({proc.message[:400]})",
            hint="The recorded commit may have been rewritten; check out the code by hand.",
        )


def _tree_of(root: Path) -> str:
    git(root, "add", "-A", check=False)
    return git(root, "write-tree", check=False).text


def _finish(
    root: Path, repo: Path, commit: str, method: str, recorded_tree: str | None
) -> Checkout:
    if method == "snapshot":
        tree_id = git(root, "rev-parse", "HEAD^{tree}", check=False).text
    else:
        tree_id = _tree_of(root)
    changed: tuple[str, ...] = ()
    if recorded_tree and recorded_tree != tree_id:
        proc = git(root, "diff", "--name-only", recorded_tree, tree_id, check=False)
        changed = tuple(proc.text.split()) if proc.ok else ("(unknown)",)
    return Checkout(root, repo, commit, tree_id, method, recorded_tree, changed)


def checkout_code(
    code: Mapping[str, Any], dest: str | os.PathLike[str], *, patch: str | os.PathLike[str]
) -> Checkout:
    """Check out the code a run recorded (``code.json``) into ``dest``."""
    target = Path(dest)
    repo_text = code.get("repo")
    if not repo_text:
        raise ReproduceError(
            "checkout",
            f"the run recorded no git repository ({code.get('note') or 'no code.json'}).",
            hint="Reproduce needs the code snapshot; run experiments inside a git repository.",
        )
    repo = Path(str(repo_text))
    snapshot, commit = code.get("snapshot"), code.get("commit")
    recorded_tree = code.get("snapshot_tree")
    if _has_commit(repo, snapshot):
        _worktree(repo, str(snapshot), target)
        return _finish(target, repo, str(snapshot), "snapshot", recorded_tree)
    if _has_commit(repo, commit):
        _worktree(repo, str(commit), target)
        try:
            _apply_patch(target, Path(patch), str(commit))
        except ReproduceError:
            Checkout(target, repo, str(commit), "", "commit+patch").remove()
            raise
        return _finish(target, repo, str(commit), "commit+patch", recorded_tree)
    remote = code.get("remote")
    if remote and commit:
        proc = git(
            target.parent,
            "clone",
            "--quiet",
            "--no-checkout",
            str(remote),
            str(target),
            check=False,
        )
        if not proc.ok:
            raise ReproduceError(
                "checkout",
                f"{repo} no longer holds commit {str(commit)[:12]} and cloning {remote} failed: "
                f"{proc.message[:300]}",
            )
        proc = git(target, "checkout", "--quiet", "--detach", str(commit), check=False)
        if not proc.ok:
            raise ReproduceError(
                "checkout", f"commit {str(commit)[:12]} is not in {remote}: {proc.message}"
            )
        _apply_patch(target, Path(patch), str(commit))
        return _finish(target, repo, str(commit), "clone+patch", recorded_tree)
    raise ReproduceError(
        "checkout",
        f"neither the snapshot {str(snapshot)[:12]} nor the commit {str(commit)[:12]} is in "
        f"{repo}, and no remote was recorded.",
        hint="Fetch the commit (and refs/replicator/*) into that repository and try again.",
    )


def checkout_commit(
    repo: str | os.PathLike[str], rev: str, dest: str | os.PathLike[str]
) -> Checkout:
    """Check out one commit of ``repo`` (an editable package's snapshot or commit) into ``dest``."""
    root = Path(repo)
    if not _has_commit(root, rev):
        raise ReproduceError(
            "environment", f"commit {rev[:12]} is not in {root}; the package cannot be installed."
        )
    _worktree(root, rev, Path(dest))
    return _finish(Path(dest), root, rev, "commit", None)
