"""``release export``: publish a clean copy of HEAD as a new repository with a single commit.

The copy holds exactly the files tracked at HEAD (no history, no ignored files, no uncommitted
changes, no ``.replicator/`` store), written with ``git checkout-index`` from a temporary index
so the user's index and work tree are never touched. Before committing, the copy is checked with
:func:`~.check.check_release`; any finding of severity *error* (a secret, a credential file, a
file GitHub would refuse) stops the export and removes the copy.

Squashing does not un-leak a key that was already pushed: rotate it first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..capture.git import git
from ..errors import ReplicatorError, UsageError
from .check import CheckReport, check_release

__all__ = ["ExportResult", "export_release"]


@dataclass(frozen=True)
class ExportResult:
    """The new repository, its single commit, the source commit and the check of the copy."""

    dest: Path
    commit: str
    source_commit: str
    files: int
    report: CheckReport


def export_release(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    message: str | None = None,
    baseline: str | os.PathLike[str] | None = None,
) -> ExportResult:
    """Write HEAD's tracked files of ``source`` to a new one-commit repository at ``dest``.

    Raises UsageError when ``source`` is not a git repository with a commit or ``dest`` exists and
    is not empty; ReplicatorError (exit 1) when the check finds errors in the copy.
    """
    src = Path(source).resolve()
    target = Path(dest).resolve()
    try:
        top = Path(git(src, "rev-parse", "--show-toplevel", timeout=600).text)
        head = git(src, "rev-parse", "--verify", "HEAD^{commit}", timeout=600).text
    except ReplicatorError as exc:
        raise UsageError(
            f"{src} is not a git repository with at least one commit; commit the code you want "
            f"to publish first ({exc})."
        ) from exc
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"Destination {target} exists and is not empty; give a new directory.")
    if target == top or top in target.parents:
        raise UsageError(
            f"Destination {target} is inside the repository {top}; choose a path outside it."
        )
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        count = _materialise(top, target)
        report = check_release(
            target,
            formatting=False,
            baseline=baseline if baseline is not None else top / ".replicator-baseline.json",
        )
        errors = [f for f in report.findings if f.severity == "error"]
        if errors:
            shown = "\n".join(f"  {f.location}: [{f.rule}] {f.message}" for f in errors[:10])
            more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
            raise ReplicatorError(
                f"Export refused: the check found {len(errors)} error(s) in what would be "
                f"published:\n{shown}{more}\nFix them (run `replicator release check`), commit, "
                "and export again."
            )
        commit = _commit(target, message or f"Release of {head[:12]}")
    except BaseException:
        _remove(target, created)
        raise
    return ExportResult(target, commit, head, count, report)


def _materialise(top: Path, target: Path) -> int:
    """Check out HEAD's tracked files (minus .replicator/) into ``target`` via a temporary index."""
    with tempfile.TemporaryDirectory(prefix="replicator-export-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(top, "read-tree", "HEAD", env=env, timeout=600)
        listed = git(top, "ls-files", "-z", "-s", env=env, timeout=600).fields()
        paths = []
        for entry in listed:
            meta, _, path = entry.partition("\t")
            if meta.startswith("160000") or path.startswith(".replicator/"):
                continue  # submodules are not files; the store is never published
            paths.append(path)
        if paths:
            payload = "\0".join(paths).encode("utf-8", "surrogateescape") + b"\0"
            git(
                top,
                "checkout-index",
                "-z",
                "--stdin",
                f"--prefix={target}/",
                env=env,
                input=payload,
                timeout=600,
            )
    return len(paths)


def _commit(target: Path, message: str) -> str:
    git(target, "init", "-q", timeout=600)
    git(target, "add", "-A", timeout=600)
    # A release commit needs an author even on a machine without git identity.
    defaults = {"user.name": "replicator", "user.email": "replicator@localhost"}
    env = {
        variable: defaults[setting]
        for setting, variables in _IDENTITY_VARIABLES.items()
        if not _configured(target, setting)
        for variable in variables
        if variable not in os.environ
    }
    git(target, "commit", "-q", "--no-verify", "-m", message, env=env, timeout=600)
    return git(target, "rev-parse", "HEAD", timeout=600).text


_IDENTITY_VARIABLES = {
    "user.name": ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"),
    "user.email": ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"),
}


def _configured(repo: Path, key: str) -> bool:
    result = git(repo, "config", key, check=False)
    return result.ok and bool(result.text)


def _remove(target: Path, created: bool) -> None:
    """Undo a refused export: remove what we wrote (the directory itself only if we made it)."""
    if created:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
