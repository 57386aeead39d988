"""The files a release would publish: git's tracked (and not-ignored untracked) files, or a walk.

In a git work tree the list comes from ``git ls-files --cached --others --exclude-standard``, so
ignored files (virtual environments, data, ``.replicator/``) are skipped exactly as git skips
them, and a file that is neither tracked nor ignored is still checked (``git add -A`` would take
it). Outside git, the directory is walked, skipping ``.git``, virtual environments, caches and
the replicator store.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..capture.git import git
from ..errors import UsageError

__all__ = ["ProjectFiles", "list_project_files", "read_text"]

_SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".replicator", ".venv", "venv", "env", "__pycache__", ".mypy_cache",
        ".ruff_cache", ".pytest_cache", "node_modules", ".ipynb_checkpoints", ".tox", ".nox",
        ".dvc", "site-packages",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ProjectFiles:
    """``files``: POSIX paths relative to ``root``; ``tracked``: git's tracked set (None: no git)."""

    root: Path
    files: tuple[str, ...]
    tracked: frozenset[str] | None

    @property
    def is_git(self) -> bool:
        return self.tracked is not None


def _git_lines(root: Path, *args: str) -> list[str] | None:
    """The NUL-separated output of a git command, or None when git fails or is missing."""
    try:
        result = git(root, "-c", "core.quotepath=off", *args, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.fields() if result.ok else None


def list_project_files(root: str | os.PathLike[str]) -> ProjectFiles:
    """The files a release of ``root`` would contain (see the module docstring)."""
    base = Path(root)
    if not base.is_dir():
        raise UsageError(f"{base} is not a directory. Give the project's root directory.")
    base = base.resolve()
    top = _git_lines(base, "rev-parse", "--show-toplevel")
    if top is not None:
        tracked = _git_lines(base, "ls-files", "-z", "--cached") or []
        others = _git_lines(base, "ls-files", "-z", "--others", "--exclude-standard") or []
        present = [p for p in sorted(set(tracked) | set(others)) if (base / p).is_file()]
        files = [p for p in present if not p.startswith(".replicator/")]
        return ProjectFiles(base, tuple(files), frozenset(tracked))
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".venv")
        )
        rel = Path(dirpath).relative_to(base)
        for name in sorted(filenames):
            found.append((rel / name).as_posix())
    return ProjectFiles(base, tuple(found), None)


def read_text(path: Path, *, limit: int) -> str | None:
    """The text of a file, or None for binary files (a NUL in the first 8 KiB) and huge files."""
    try:
        if path.is_symlink() or path.stat().st_size > limit:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")
