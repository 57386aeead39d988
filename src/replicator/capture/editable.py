"""Snapshots of editable packages: an editable install's uncommitted changes, recorded as a
snapshot commit in its own repository so that a reproduction can install exactly what ran."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .git import capture_code

__all__ = ["snapshot_editable_packages"]


def snapshot_editable_packages(
    packages: Mapping[str, Mapping[str, Any]],
    *,
    run_id: str,
    project_repo: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Record the uncommitted changes of editable packages as snapshot commits.

    For every editable package with uncommitted changes whose source lives in a git repository
    other than the run's own (``project_repo``), a snapshot commit of that repository's working tree is made (same
    mechanism as the run's code snapshot: temporary index, ``commit-tree``, a ref under
    ``refs/replicator/snapshots/``) and its id stored under ``git.snapshot``. Returns the
    packages with those fields added; meant to be called by capture after
    :func:`~replicator.capture.environment.capture_environment`.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, info in packages.items():
        record = dict(info)
        git = dict(record.get("git") or {})
        # A clean package is identified by its commit; only uncommitted changes need a snapshot.
        if (
            record.get("origin") == "editable"
            and git.get("repo")
            and git.get("dirty")
            and record.get("path")
        ):
            same = (
                project_repo is not None
                and Path(git["repo"]).resolve() == Path(project_repo).resolve()
            )
            if not same:
                state = capture_code(record["path"], run_id=f"{run_id}-pkg-{key}")
                if state.snapshot:
                    git.update(
                        snapshot=state.snapshot,
                        snapshot_ref=state.snapshot_ref,
                        snapshot_tree=state.snapshot_tree,
                    )
                    record["git"] = git
        out[key] = record
    return out
