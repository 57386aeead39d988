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
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


def _git(
    cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        input=stdin,
        env=env,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise ReplicatorError(f"git {' '.join(args[:2])} failed in {cwd}: {err}")
    return proc.stdout.decode("utf-8", "surrogateescape")


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
        top = Path(_git(src, "rev-parse", "--show-toplevel").strip())
        head = _git(src, "rev-parse", "--verify", "HEAD^{commit}").strip()
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
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(top, "read-tree", "HEAD", env=env)
        listed = _git(top, "ls-files", "-z", "-s", env=env).split("\0")
        paths = []
        for entry in listed:
            if not entry:
                continue
            meta, _, path = entry.partition("\t")
            if meta.startswith("160000") or path.startswith(".replicator/"):
                continue  # submodules are not files; the store is never published
            paths.append(path)
        if paths:
            payload = "\0".join(paths).encode("utf-8", "surrogateescape") + b"\0"
            _git(
                top,
                "checkout-index",
                "-z",
                "--stdin",
                f"--prefix={target}/",
                env=env,
                stdin=payload,
            )
    return len(paths)


def _commit(target: Path, message: str) -> str:
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    env = dict(os.environ)
    # A release commit needs an author even on a machine without git identity.
    for key, default in (("GIT_AUTHOR_NAME", "replicator"), ("GIT_COMMITTER_NAME", "replicator")):
        if not _configured(target, "user.name"):
            env.setdefault(key, default)
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        if not _configured(target, "user.email"):
            env.setdefault(key, "replicator@localhost")
    _git(target, "commit", "-q", "--no-verify", "-m", message, env=env)
    return _git(target, "rev-parse", "HEAD").strip()


def _configured(repo: Path, key: str) -> bool:
    proc = subprocess.run(["git", "config", key], cwd=repo, capture_output=True, check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


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
