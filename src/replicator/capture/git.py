"""Code capture: commit, branch, remote, dirty flag and a snapshot commit of the working tree.

The snapshot holds the exact working tree, untracked (non-ignored) files included. It is built
with a temporary index seeded from the user's own index (so unchanged files are not re-hashed),
committed with ``git commit-tree`` on top of HEAD and kept from garbage collection under
``refs/replicator/snapshots/RUN_ID``. The user's branch, index, stash and working tree are
never touched. A plain patch (snapshot versus HEAD, binary-safe) is written next to the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..redact import clean_remote_url

__all__ = ["CodeState", "capture_code", "git_root"]

SNAPSHOT_REF_PREFIX = "refs/replicator/snapshots/"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "replicator",
    "GIT_AUTHOR_EMAIL": "replicator@localhost",
    "GIT_COMMITTER_NAME": "replicator",
    "GIT_COMMITTER_EMAIL": "replicator@localhost",
}


@dataclass(frozen=True)
class CodeState:
    """Git facts of a run. ``repo`` is None outside a repository (``note`` says so)."""

    repo: str | None
    commit: str | None = None
    branch: str | None = None
    remote: str | None = None
    dirty: bool | None = None
    snapshot: str | None = None
    snapshot_ref: str | None = None
    snapshot_tree: str | None = None
    changed_files: int = 0
    untracked_files: int = 0
    relative_cwd: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _git(
    args: list[str],
    cwd: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    check: bool = True,
    binary: bool = False,
) -> Any:
    full_env = {
        **os.environ,
        **(env or {}),
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        # `git status` must not refresh the user's index behind their back
        "GIT_OPTIONAL_LOCKS": "0",
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=full_env, capture_output=True, check=False)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(
            proc.returncode, ["git", *args], proc.stdout, proc.stderr
        )
    if binary:
        return proc.stdout
    return proc.stdout.decode("utf-8", "replace").strip()


def git_root(path: str | os.PathLike[str]) -> Path | None:
    """The top of the git working tree containing ``path``, or None."""
    if shutil.which("git") is None:
        return None
    try:
        out = _git(["rev-parse", "--show-toplevel"], path)
    except (subprocess.CalledProcessError, OSError):
        return None
    return Path(out) if out else None


def capture_code(
    cwd: str | os.PathLike[str],
    *,
    run_id: str,
    patch_path: str | os.PathLike[str] | None = None,
    exclude: list[str] | tuple[str, ...] = (),
) -> CodeState:
    """Record git facts for ``cwd`` and make the snapshot commit; never raises for a missing repo.

    ``exclude`` lists paths (relative to the repository root) kept out of the snapshot, such as
    the store directory when it is not ignored.
    """
    if shutil.which("git") is None:
        return CodeState(repo=None, note="git is not installed; code was not captured")
    root = git_root(cwd)
    if root is None:
        return CodeState(repo=None, note="not inside a git repository; code was not captured")
    try:
        return _capture(root, Path(cwd), run_id, patch_path, exclude)
    except subprocess.CalledProcessError as exc:
        err = exc.stderr.decode("utf-8", "replace").strip() if exc.stderr else ""
        return CodeState(repo=str(root), note=f"git failed ({' '.join(exc.cmd[:3])}): {err[:300]}")


def _capture(root: Path, cwd: Path, run_id: str, patch_path: Any, exclude: Any) -> CodeState:
    head = _git(["rev-parse", "--verify", "-q", "HEAD"], root, check=False) or None
    branch = _git(["symbolic-ref", "--short", "-q", "HEAD"], root, check=False) or None
    remote = _remote(root, branch)
    tree = _working_tree(root, exclude)
    status = _git(["status", "--porcelain=v1", "-uall", "--no-renames"], root, check=False)
    untracked = sum(1 for line in status.splitlines() if line.startswith("??"))
    changed = sum(1 for line in status.splitlines() if line and not line.startswith("??"))
    head_tree = _git(["rev-parse", f"{head}^{{tree}}"], root) if head else None
    dirty = tree != head_tree
    message = f"replicator snapshot for run {run_id}\n\nbase: {head or '(no commit)'}\n"
    args = ["commit-tree", tree, "-m", message]
    if head:
        args[2:2] = ["-p", head]
    snapshot = _git(args, root, env=_IDENTITY)
    ref = SNAPSHOT_REF_PREFIX + run_id
    _git(["update-ref", ref, snapshot], root)
    if patch_path is not None:
        base = head or _git(["hash-object", "-t", "tree", "/dev/null"], root)
        patch = _git(
            ["diff", "--binary", "--no-color", "--no-ext-diff", base, snapshot], root, binary=True
        )
        Path(patch_path).write_bytes(patch)
    try:
        rel = str(cwd.resolve().relative_to(root.resolve()))
    except ValueError:
        rel = None
    return CodeState(
        repo=str(root),
        commit=head,
        branch=branch,
        remote=remote,
        dirty=dirty,
        snapshot=snapshot,
        snapshot_ref=ref,
        snapshot_tree=tree,
        changed_files=changed,
        untracked_files=untracked,
        relative_cwd=rel,
        note=None if head else "the repository has no commit yet; the snapshot has no parent",
    )


def _working_tree(root: Path, exclude: Any = ()) -> str:
    """The tree id of the working tree (untracked, non-ignored files included); touches nothing."""
    git_dir = Path(_git(["rev-parse", "--absolute-git-dir"], root))
    with tempfile.TemporaryDirectory(prefix="replicator-index-") as tmp:
        tmp_index = os.path.join(tmp, "index")
        user_index = git_dir / "index"
        if user_index.exists():
            # Starting from the user's index keeps git's stat cache: only changed files are hashed.
            # copy2 keeps the index's mtime: git's racy-clean check compares file mtimes with
            # it, and a fresh mtime would make a same-size edit in the same second look clean.
            shutil.copy2(user_index, tmp_index)
        env = {"GIT_INDEX_FILE": tmp_index, **_IDENTITY}
        _git(["add", "-A", "--", "."], root, env=env)
        for path in exclude:
            _git(["rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", path], root, env=env)
        return str(_git(["write-tree"], root, env=env))


def working_tree_id(path: str | os.PathLike[str]) -> str | None:
    """The tree id of the working tree of the repository holding ``path`` (None outside git).

    Equal ids mean equal content, so a dirty editable package can be compared with the snapshot
    recorded for it without making a commit.
    """
    root = git_root(path)
    if root is None:
        return None
    try:
        return _working_tree(root)
    except (subprocess.CalledProcessError, OSError):
        return None


def _remote(root: Path, branch: str | None) -> str | None:
    name = None
    if branch:
        name = _git(["config", "--get", f"branch.{branch}.remote"], root, check=False) or None
    if not name:
        remotes = _git(["remote"], root, check=False).split()
        name = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    if not name:
        return None
    url = _git(["remote", "get-url", name], root, check=False)
    return clean_remote_url(url) if url else None


def package_repo_state(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Commit and dirty flag of the repository holding an editable package's source."""
    root = git_root(path)
    if root is None:
        return None
    commit = _git(["rev-parse", "--verify", "-q", "HEAD"], root, check=False) or None
    status = _git(["status", "--porcelain=v1"], root, check=False)
    return {"repo": str(root), "commit": commit, "dirty": bool(status.strip())}
