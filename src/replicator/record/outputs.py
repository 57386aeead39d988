"""Results of scripts that never import replicator: the files a command produced, with hashes.

Declared outputs (``--outputs`` or an ``outputs:`` config key) are recorded as they are after the
command. With none declared, the working directory is listed before and after the command and
the files it created or changed are recorded (the store, ``.git``, virtual environments and
caches excluded, and the files the recorder's own stdout and stderr go to, such as a shell's
``> run.log``: those are listed as ``ignored``). Each file gets its size and BLAKE3 digest.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._util.hashing import hash_file

__all__ = ["OutputWatcher", "hash_file"]

SKIP_DIRS = frozenset(
    {
        ".git",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "node_modules",
        ".tox",
        ".nox",
        ".ipynb_checkpoints",
    }
)
MAX_FILES = 200_000


class OutputWatcher:
    """Find what a command wrote under ``root`` (or record the ``declared`` paths)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        declared: Sequence[str] = (),
        exclude: Sequence[Path] = (),
        ignore: Sequence[tuple[int, int, str]] = (),
    ) -> None:
        self.root = Path(root).resolve()
        self.declared = list(declared)
        self.exclude = {Path(p).resolve() for p in exclude}
        # (device, inode) -> why: files that are not outputs wherever they are (a redirect)
        self.ignore: dict[tuple[int, int], str] = {}
        for dev, ino, why in ignore:
            had = self.ignore.get((dev, ino))
            self.ignore[(dev, ino)] = why if had in (None, why) else f"{had} and {why}"
        self.ignored: dict[str, str] = {}
        self._before: dict[str, tuple[int, int]] = {}
        self.truncated = False

    def _scan(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        stack = [self.root]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        path = Path(entry.path)
                        if entry.name in SKIP_DIRS or path in self.exclude:
                            continue
                        if (path / "pyvenv.cfg").exists():
                            continue  # a virtual environment
                        stack.append(path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        why = self.ignore.get((st.st_dev, st.st_ino))
                        if why is not None:
                            self.ignored[os.path.relpath(entry.path, self.root)] = why
                            continue
                        found[os.path.relpath(entry.path, self.root)] = (st.st_size, st.st_mtime_ns)
                        if len(found) >= MAX_FILES:
                            self.truncated = True
                            return found
                except OSError:
                    continue
        return found

    def before(self) -> None:
        if not self.declared:
            self._before = self._scan()

    def after(self) -> dict[str, Any]:
        """``{"mode": "declared"|"detected", "files": [{path, size, blake3, status}], ...}``."""
        files: list[dict[str, Any]] = []
        missing: list[str] = []
        if self.declared:
            for item in self.declared:
                path = Path(item)
                path = path if path.is_absolute() else self.root / path
                if path.is_dir():
                    for sub in sorted(p for p in path.rglob("*") if p.is_file()):
                        files.append(self._entry(sub, "declared"))
                elif path.is_file():
                    files.append(self._entry(path, "declared"))
                else:
                    missing.append(item)
            return {
                "mode": "declared",
                "declared": self.declared,
                "files": files,
                "missing": missing,
            }
        now = self._scan()
        for rel, stamp in sorted(now.items()):
            old = self._before.get(rel)
            if old == stamp:
                continue
            files.append(self._entry(self.root / rel, "created" if old is None else "modified"))
        deleted = sorted(set(self._before) - set(now))
        result: dict[str, Any] = {
            "mode": "detected",
            "files": files,
            "deleted": deleted,
            "truncated": self.truncated,
        }
        if self.ignored:
            result["ignored"] = [
                {"path": path, "reason": f"the recorder's own {why} (a redirect), not an output"}
                for path, why in sorted(self.ignored.items())
            ]
        return result

    def _entry(self, path: Path, status: str) -> dict[str, Any]:
        try:
            rel = str(path.relative_to(self.root))
        except ValueError:
            rel = str(path)
        try:
            size = path.stat().st_size
            digest = hash_file(path)
        except OSError as exc:
            return {"path": rel, "status": status, "error": str(exc)}
        return {"path": rel, "size": size, "blake3": digest, "status": status}
