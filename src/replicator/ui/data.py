"""One run as ``replicator ui`` shows it: its details (run.json as recorded, config, code and
patch, environment, checkpoints...) and the tail of its output.

Every function reads; none writes into a run. The store's readers do the work (the record with
its current status, the JSON parts of a run); this module shapes their results into the JSON of
the API (see docs/ui.md). A damaged run is shown with ``damaged`` saying why, never an exception.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

from ..store import RunRecord, Store, read_part
from ..store.metrics import iter_jsonl, metric_ranks
from ..store.record import read_run
from .metrics import MetricsCache, scan_keys

__all__ = ["OUTPUT_STREAMS", "changed_files", "output_tail", "patch_of", "run_detail"]

OUTPUT_STREAMS = ("stdout", "stderr")


# ---------------------------------------------------------------------------- one run


def run_detail(store: Store, run_dir: Path, cache: MetricsCache) -> dict[str, Any]:
    """``/api/runs/{id}``: everything recorded for one run, as recorded (secrets were redacted
    before they reached disk; nothing here un-redacts). A damaged run.json gives what the other
    files still tell, with ``damaged`` saying why."""
    damaged: str | None = None
    record: RunRecord | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            record = read_run(run_dir, partial=True, stale_after=store.heartbeat_stale_s)
        except Exception as exc:
            damaged = str(exc)
        if record is not None and record.meta.get("damaged"):
            damaged = "; ".join(record.meta["damaged"])
        code = _part(run_dir, "code.json")
        environment = _part(run_dir, "environment.json")
        hardware = _part(run_dir, "hardware.json")
        seeding = _part(run_dir, "seeding.json")
        outputs = _part(run_dir, "outputs.json")
        data_part = _part(run_dir, "data.json")
    meta = {**record.meta, "config": record.config} if record is not None else {}
    return {
        "id": record.id if record is not None else run_dir.name,
        "record": meta,
        "summary": _numbers(record.summary) if record is not None else {},
        "summary_raw": _jsonable(record.summary) if record is not None else {},
        "status": record.status if record is not None else "damaged",
        "started": record.started if record is not None else None,
        "duration": _finite(record.duration) if record is not None else None,
        "experiment": record.experiment if record is not None else None,
        "name": record.name if record is not None else None,
        "seed": record.seed if record is not None else None,
        "status_history": _status_history(run_dir),
        "config": record.config if record is not None else {},
        "config_raw": _config_files(run_dir),
        "code": _code(run_dir, code),
        "environment": environment,
        "hardware": hardware,
        "seeds": seeding or ({"seed": record.seed} if record is not None else {}),
        "datasets": _datasets(meta, data_part),
        "outputs": _outputs(outputs),
        "checkpoints": _checkpoints(run_dir),
        "metric_keys": scan_keys(run_dir, cache),
        "metric_ranks": metric_ranks(run_dir / "metrics.jsonl"),
        "damaged": damaged,
    }


def _part(run_dir: Path, name: str) -> dict[str, Any]:
    """A JSON part of the run, {} when it is a symlink (it may lead out of the store)."""
    if (run_dir / name).is_symlink():
        return {}
    return read_part(run_dir, name)


def _status_history(run_dir: Path) -> list[dict[str, Any]]:
    if (run_dir / "status.jsonl").is_symlink():
        return []
    history = []
    for entry in iter_jsonl(run_dir / "status.jsonl"):
        history.append(
            {
                "status": entry.get("status"),
                "time": entry.get("time"),
                **{k: v for k, v in entry.items() if k not in ("status", "time")},
            }
        )
    return history


_CONFIG_TEXT_LIMIT = 1_000_000


def _config_files(run_dir: Path) -> dict[str, str]:
    """The config files as recorded (``config/`` and ``config.yaml``), by name."""
    files: dict[str, str] = {}
    resolved = run_dir / "config.yaml"
    folder = run_dir / "config"
    candidates = [resolved] if resolved.is_file() else []
    if folder.is_dir() and not folder.is_symlink():
        candidates.extend(sorted(p for p in folder.rglob("*") if p.is_file()))
    for path in candidates:
        if path.is_symlink():
            continue  # a link may lead out of the store
        try:
            text = path.read_bytes()[:_CONFIG_TEXT_LIMIT].decode("utf-8", "replace")
        except OSError:
            continue
        files[str(path.relative_to(run_dir))] = text
    return files


def _code(run_dir: Path, code: dict[str, Any]) -> dict[str, Any]:
    patch_path = run_dir / "code.patch"
    patch: str | None = None
    if patch_path.is_file() and not patch_path.is_symlink():
        try:
            patch = patch_path.read_bytes()[:_CONFIG_TEXT_LIMIT].decode("utf-8", "replace")
        except OSError:
            patch = None
    return {
        "commit": code.get("commit"),
        "branch": code.get("branch"),
        "dirty": code.get("dirty"),
        "snapshot_ref": code.get("snapshot_ref") or code.get("snapshot"),
        "changed_files": changed_files(code, patch),
        "patch": patch,
        "recorded": code,
    }


def changed_files(code: dict[str, Any], patch: str | None) -> list[dict[str, Any]]:
    """The files changed against the commit: from code.json when it lists them, else the
    file headers of the patch."""
    listed = code.get("changed_files") or code.get("files") or code.get("dirty_files")
    out: list[dict[str, Any]] = []
    if isinstance(listed, list):
        for item in listed:
            if isinstance(item, dict) and "path" in item:
                out.append({"path": str(item["path"]), "change": str(item.get("change", "M"))})
            elif isinstance(item, str):
                out.append({"path": item, "change": "M"})
        if out:
            return out
    if not patch:
        return out
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            parts = line.split(" b/", 1)
            path = parts[1] if len(parts) == 2 else line[len("diff --git ") :]
            out.append({"path": path, "change": "M"})
        elif line.startswith("new file mode") and out:
            out[-1]["change"] = "A"
        elif line.startswith("deleted file mode") and out:
            out[-1]["change"] = "D"
    return out


def patch_of(patch: str | None, path: str) -> str | None:
    """The part of a git patch that changes ``path``."""
    if not patch:
        return None
    chunks = ("\n" + patch).split("\ndiff --git ")
    for chunk in chunks[1:]:
        header = chunk.split("\n", 1)[0]
        if header.endswith(f" b/{path}"):
            return "diff --git " + chunk.rstrip("\n") + "\n"
    return None


def _datasets(meta: dict[str, Any], data_part: dict[str, Any]) -> list[Any]:
    found = meta.get("data") or meta.get("datasets") or data_part.get("datasets") or data_part
    if isinstance(found, dict):
        return [
            {"name": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in found.items()
        ]
    return found if isinstance(found, list) else []


def _outputs(outputs: dict[str, Any]) -> list[Any]:
    files = outputs.get("files", outputs)
    if isinstance(files, dict):
        return [
            {"path": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in files.items()
        ]
    return files if isinstance(files, list) else []


def _checkpoints(run_dir: Path) -> dict[str, Any]:
    from .checkpoints import checkpoint_files

    return {
        "files": [] if (run_dir / "checkpoints").is_symlink() else checkpoint_files(run_dir),
        "verify_url": f"/api/runs/{run_dir.name}/checkpoints/verify",
    }


def output_tail(run_dir: Path, stream: str, lines: int) -> dict[str, Any]:
    """The last ``lines`` lines of a run's stdout.log or stderr.log (as recorded, redacted)."""
    path = run_dir / f"{stream}.log"
    try:
        size = os.stat(path).st_size
    except OSError:
        return {"lines": [], "size": 0}
    if path.is_symlink():
        return {"lines": [], "size": 0}
    text = _read_tail(path, size, lines)
    return {"lines": text, "size": size}


def _read_tail(path: Path, size: int, lines: int) -> list[str]:
    block = 64 * 1024
    data = b""
    with open(path, "rb") as f:
        pos = size
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
            if len(data) > 16 * 1024 * 1024:
                break
    text = data.decode("utf-8", "replace").splitlines()
    return text[-lines:] if lines > 0 else []


def _numbers(summary: dict[str, Any]) -> dict[str, float | int]:
    from .table import numbers

    return numbers(summary)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    """``value`` as strict JSON allows it: non-finite numbers as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
