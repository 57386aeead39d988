"""``replicator ls --remote``: the complete runs of a remote store as records, from their markers
(one listing and one batch of reads, whatever the number of runs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..store import RunRecord, Store, StoreLike, compile_where
from .location import open_remote
from .pulling import read_markers

__all__ = ["list_remote"]


def list_remote(
    remote: str,
    *,
    store: StoreLike = None,
    experiment: str | None = None,
    status: str | None = None,
    where: str | Callable[[dict[str, Any]], bool] | None = None,
) -> list[RunRecord]:
    """The complete runs on ``remote``, oldest first, filtered like :meth:`Store.select`.

    A record's ``dir`` is its folder relative to the remote's root (``runs/RUN_ID``)."""
    source = open_remote(remote, store=Store.coerce(store))
    records = [_record(marker) for marker in read_markers(source).values()]
    records.sort(key=lambda r: (r.started or 0.0, r.id))
    if experiment is not None:
        records = [r for r in records if r.experiment == experiment]
    if status is not None:
        records = [r for r in records if r.status == status]
    if where is not None:
        predicate = where if callable(where) else compile_where(where)
        records = [r for r in records if predicate(r.as_dict())]
    return records


def _record(marker: dict[str, Any]) -> RunRecord:
    def number(key: str) -> float | None:
        value = marker.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    seed, config, summary = marker.get("seed"), marker.get("config"), marker.get("summary")
    return RunRecord(
        id=str(marker["id"]),
        dir=Path("runs", str(marker["id"])),
        experiment=str(marker.get("experiment") or "default"),
        name=marker.get("name") if isinstance(marker.get("name"), str) else None,
        status=str(marker.get("status") or "unknown"),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        started=number("started"),
        ended=number("ended"),
        config=config if isinstance(config, dict) else {},
        summary=summary if isinstance(summary, dict) else {},
        meta={"exit_code": marker.get("exit_code"), "command": marker.get("command")},
    )
