"""Reading checkpoints without a manager: one file (:func:`read_checkpoint`), or the manifest of
a run for ``replicator show`` and ``replicator checkpoint list`` (:func:`describe_checkpoints`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._util.io import read_json
from .info import MANIFEST, Checkpoint, _decode
from .read import check_checkpoint_file, read_checkpoint_file

__all__ = ["describe_checkpoints", "read_checkpoint"]


def read_checkpoint(
    path: str | os.PathLike[str],
    *,
    trust_pickle: bool = False,
    map_location: Any = None,
    restore_rng: bool = False,
) -> Checkpoint:
    """Read one checkpoint file outside a manager (no manifest hash to check against).

    A file that is not a replicator checkpoint (a pickle, a ``torch.save`` archive) is refused
    unless ``trust_pickle=True``; then it is unpickled with ``torch.load(weights_only=False)``
    and the opt-in is logged.
    """
    tree = read_checkpoint_file(path, trust_pickle=trust_pickle, map_location=map_location)
    if tree.get("pickled"):
        return Checkpoint(state=tree["state"], step=-1, epoch=None, metrics={}, info=None)
    if restore_rng and tree.get("rng") is not None:
        from .rng import restore_rng_state

        restore_rng_state(tree["rng"])
    return Checkpoint(
        state=tree.get("state"),
        step=int(tree.get("step", -1)),
        epoch=tree.get("epoch"),
        metrics={k: _decode(v) for k, v in dict(tree.get("metrics") or {}).items()},
        info=None,
        rng=tree.get("rng"),
    )


def describe_checkpoints(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The checkpoints of a run as plain dicts for ``replicator show``, oldest first.

    Each has file, step, epoch, metrics, size, hash, time and ``roles`` (``latest``, ``best1``,
    ``best2``..., ``last``); the monitored metric is in ``monitor`` when there is one; ``damaged``
    says what is wrong with a file's header or metadata (None when nothing is). Reads the
    manifest and each file's header only (no hashing); an unreadable manifest gives an empty list.
    """
    directory = Path(run_dir) / "checkpoints"
    try:
        manifest = read_json(directory / MANIFEST)
    except (OSError, ValueError):
        return []
    if not isinstance(manifest, dict):
        return []
    best = [f for f in _list(manifest.get("best")) if isinstance(f, str)]
    monitor = manifest.get("monitor")
    out = []
    for entry in _list(manifest.get("checkpoints")):
        if not isinstance(entry, dict):
            continue
        roles = []
        if entry.get("file") == manifest.get("latest"):
            roles.append("latest")
        if entry.get("file") in best:
            roles.append(f"best{best.index(entry['file']) + 1}")
        if not roles:
            roles.append("last")
        path = directory / str(entry.get("file"))
        raw = entry.get("metrics")
        metrics = raw if isinstance(raw, dict) else {}
        item: dict[str, Any] = {
            "file": entry.get("file"),
            "step": entry.get("step"),
            "epoch": entry.get("epoch"),
            "metrics": {k: _decode(v) for k, v in metrics.items()},
            "size": entry.get("size"),
            "hash": entry.get("hash"),
            "time": entry.get("time"),
            "roles": roles,
            "exists": path.is_file(),
            "damaged": check_checkpoint_file(path) if path.is_file() else None,
        }
        if monitor:
            item["monitor"] = monitor
            item["monitor_value"] = item["metrics"].get(monitor)  # a dict, built above
        out.append(item)
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
