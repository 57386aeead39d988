"""Paths a run recorded, as seen from where the run is found now.

A run records absolute paths as its host saw them: its working directory (``cwd``), its
repository (``code.repo``) and its own directory (``child_env.REPLICATOR_RUN_DIR``). On a
cluster the same shared filesystem may be mounted at another path on each node
(``/mnt/nfs/proj`` on a compute node, ``/nfs/proj`` on the login node), a store may be copied or
moved, and a pulled run sits in another store. Readers therefore resolve recorded paths against
the run's actual location: the recorded run directory and the actual one share a tail
(``proj/.replicator/runs/RUN_ID``); what precedes it (``/mnt/nfs`` -> ``/nfs``) is swapped in
every recorded path under the old prefix. The relocated path is used when it exists, the
recorded one when only it exists, and the relocated one when neither does (it names where the
run's view of the filesystem now lies). Nothing is written: run.json keeps the host's view.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["recorded_run_dir", "relocate_meta", "relocator"]

_PULLED = "pulled.json"


def recorded_run_dir(run_dir: Path, meta: Mapping[str, Any]) -> str | None:
    """The run directory as the recording host saw it; None when the run does not say."""
    recorded = meta.get("run_dir")
    if not isinstance(recorded, str):
        child_env = meta.get("child_env")
        recorded = child_env.get("REPLICATOR_RUN_DIR") if isinstance(child_env, dict) else None
    if not isinstance(recorded, str):
        try:
            with open(run_dir / _PULLED, encoding="utf-8") as f:
                pulled = json.load(f)
        except (OSError, ValueError):
            return None
        recorded = pulled.get("run_dir") if isinstance(pulled, dict) else None
    return recorded if isinstance(recorded, str) and os.path.isabs(recorded) else None


def relocator(run_dir: Path, meta: Mapping[str, Any]) -> Callable[[str], str] | None:
    """A function mapping a recorded absolute path to the reader's view; None when the run was
    not moved (the common case: readers then use recorded paths as they are)."""
    recorded = recorded_run_dir(run_dir, meta)
    actual = os.path.abspath(run_dir)
    if recorded is None or recorded == actual:
        return None
    old, new = PurePosixPath(recorded).parts, Path(actual).parts
    shared = 0
    while shared < min(len(old), len(new)) - 1 and old[-1 - shared] == new[-1 - shared]:
        shared += 1
    if shared == 0:
        return None
    old_prefix, new_prefix = PurePosixPath(*old[:-shared]), Path(*new[:-shared])

    def relocate(path: str) -> str:
        try:
            rest = PurePosixPath(path).relative_to(old_prefix)
        except ValueError:
            return path
        moved = str(new_prefix / rest)
        if os.path.exists(moved) or not os.path.exists(path):
            return moved
        return path

    return relocate


def relocate_meta(run_dir: Path, meta: dict[str, Any], *, name: str = "run.json") -> dict[str, Any]:
    """``meta`` (run.json, or code.json with ``name``) with its recorded paths relocated; the
    same object when the run was not moved."""
    source = meta if name == "run.json" else _run_json(run_dir)
    relocate = relocator(run_dir, source)
    if relocate is None:
        return meta
    meta = dict(meta)
    if name == "code.json":
        if isinstance(meta.get("repo"), str):
            meta["repo"] = relocate(meta["repo"])
        return meta
    if isinstance(meta.get("cwd"), str):
        meta["cwd"] = relocate(meta["cwd"])
    code = meta.get("code")
    if isinstance(code, dict) and isinstance(code.get("repo"), str):
        meta["code"] = {**code, "repo": relocate(code["repo"])}
    return meta


def _run_json(run_dir: Path) -> dict[str, Any]:
    try:
        with open(run_dir / "run.json", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
