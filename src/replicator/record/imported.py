"""What every import of another tool's logs into a run shares: the keys the run logged itself,
the summary the imported values add to, and the commit recorded for a run made from old logs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .._util.io import atomic_write_json, read_json
from ..capture.git import git, git_root
from ..errors import GitError
from ..store.metrics import iter_jsonl

__all__ = ["add_to_summary", "commit_only", "own_keys"]


def own_keys(path: Path, source: str) -> set[str]:
    """The keys the script (or the output parser) logged itself, not an earlier import from
    ``source``."""
    if not path.exists():
        return set()
    return {
        str(obj["key"]) for obj in iter_jsonl(path) if "key" in obj and obj.get("source") != source
    }


def add_to_summary(run_dir: Path, last: dict[str, Any]) -> None:
    """Add the imported keys' last values to summary.json; values already there win."""
    path = run_dir / "summary.json"
    try:
        summary = read_json(path)
    except (OSError, ValueError):
        summary = {}
    if not isinstance(summary, dict):
        summary = {}
    added = {k: v for k, v in last.items() if k not in summary}
    if added:
        atomic_write_json(path, {**summary, **added})


def commit_only(root: Path, *, wrote: str) -> dict[str, Any]:
    """The commit and branch of the repository holding ``root``: no snapshot, no patch.
    ``wrote`` names what the imported logs hold ("wrote the events", ...)."""
    repo = git_root(root)
    if repo is None:
        return {"repo": None, "note": "not inside a git repository; code was not captured"}
    try:
        commit = git(repo, "rev-parse", "HEAD").text
        branch = git(repo, "rev-parse", "--abbrev-ref", "HEAD").text
    except (GitError, OSError) as exc:
        return {"repo": str(repo), "note": f"git failed: {exc}"}
    return {
        "repo": str(repo),
        "commit": commit,
        "branch": None if branch == "HEAD" else branch,
        "note": f"imported at {time.strftime('%Y-%m-%d %H:%M:%S')}: the commit checked out "
        f"then, not necessarily the code that {wrote}; no snapshot was taken",
    }
