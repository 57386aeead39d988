"""A run's checkpoints for the UI: the manifest's list (headers only) and the verify check (hash
and read of every file, as ``replicator checkpoint verify``). Neither writes anything."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..checkpoints.describe import describe_checkpoints

__all__ = ["checkpoint_files", "verify_checkpoints"]


def checkpoint_files(run_dir: Path) -> list[dict[str, Any]]:
    """``[{"name", "step", "metric", "size", "best", "latest", ...}]`` from the manifest."""
    files = []
    for item in describe_checkpoints(run_dir):
        roles = item.get("roles") or []
        value = item.get("monitor_value")
        files.append(
            {
                "name": item.get("file"),
                "step": item.get("step"),
                "epoch": item.get("epoch"),
                "metric": value if _finite(value) else None,
                "monitor": item.get("monitor"),
                "metrics": {k: v for k, v in (item.get("metrics") or {}).items() if _finite(v)},
                "size": item.get("size"),
                "time": item.get("time"),
                "roles": roles,
                "best": any(str(r).startswith("best") for r in roles),
                "latest": "latest" in roles,
                "exists": item.get("exists"),
                "damaged": item.get("damaged"),
            }
        )
    return files


def verify_checkpoints(run_dir: Path) -> dict[str, Any]:
    """``{"files": [{"name", "ok", "problem", "status"}], "orphans": [...]}``: every checkpoint
    re-hashed and read against the manifest, as ``replicator checkpoint verify``."""
    from ..checkpoints.manager import CheckpointManager
    from ..errors import CheckpointError

    directory = run_dir / "checkpoints"
    if directory.is_symlink() or not (directory / "manifest.json").is_file():
        return {"files": [], "orphans": []}
    try:
        report = CheckpointManager.open(directory).verify()
    except CheckpointError as exc:
        return {"files": [], "orphans": [], "error": str(exc)}
    files = []
    for result in report.results:
        status = result.get("status")
        problem = None
        if status == "missing":
            problem = "the file is missing"
        elif status == "mismatch":
            problem = "its hash differs from the manifest's (the file changed after it was saved)"
        elif status == "damaged":
            problem = str(result.get("reason") or "the file is damaged")
        files.append(
            {
                "name": result.get("file"),
                "step": result.get("step"),
                "ok": status == "ok",
                "status": status,
                "problem": problem,
            }
        )
    return {"files": files, "orphans": list(report.orphans)}


def _finite(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)
