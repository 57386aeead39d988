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
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ReproduceError

__all__ = ["Checkout", "checkout_code", "checkout_commit"]


def _git(args: list[str], cwd: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def _has_commit(repo: Path, rev: str | None) -> bool:
    if not rev or not repo.is_dir():
        return False
    return _git(["cat-file", "-e", f"{rev}^{{commit}}"], repo).returncode == 0


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
            _git(["worktree", "remove", "--force", str(self.root)], self.repo)
            _git(["worktree", "prune"], self.repo)
        shutil.rmtree(self.root, ignore_errors=True)


def _worktree(repo: Path, rev: str, dest: Path) -> None:
    proc = _git(["worktree", "add", "--detach", "--quiet", str(dest), rev], repo)
    if proc.returncode != 0:
        raise ReproduceError(
            "checkout", f"git worktree add of {rev[:12]} in {repo} failed: {proc.stderr.strip()}"
        )


def _apply_patch(root: Path, patch: Path, commit: str) -> None:
    if not patch.is_file() or patch.stat().st_size == 0:
        return
    proc = _git(["apply", "--binary", "--whitespace=nowarn", str(patch)], root)
    if proc.returncode != 0:
        raise ReproduceError(
            "checkout",
            f"patch conflict: the stored {patch} does not apply to commit {commit[:12]} "
            f"({proc.stderr.strip()[:400]})",
            hint="The recorded commit may have been rewritten; check out the code by hand.",
        )


def _tree_of(root: Path) -> str:
    _git(["add", "-A"], root)
    proc = _git(["write-tree"], root)
    return proc.stdout.strip()


def _finish(
    root: Path, repo: Path, commit: str, method: str, recorded_tree: str | None
) -> Checkout:
    if method == "snapshot":
        tree_id = _git(["rev-parse", "HEAD^{tree}"], root).stdout.strip()
    else:
        tree_id = _tree_of(root)
    changed: tuple[str, ...] = ()
    if recorded_tree and recorded_tree != tree_id:
        proc = _git(["diff", "--name-only", recorded_tree, tree_id], root)
        changed = tuple(proc.stdout.split()) if proc.returncode == 0 else ("(unknown)",)
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
        proc = _git(["clone", "--quiet", "--no-checkout", str(remote), str(target)], target.parent)
        if proc.returncode != 0:
            raise ReproduceError(
                "checkout",
                f"{repo} no longer holds commit {str(commit)[:12]} and cloning {remote} failed: "
                f"{proc.stderr.strip()[:300]}",
            )
        proc = _git(["checkout", "--quiet", "--detach", str(commit)], target)
        if proc.returncode != 0:
            raise ReproduceError(
                "checkout", f"commit {str(commit)[:12]} is not in {remote}: {proc.stderr.strip()}"
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
