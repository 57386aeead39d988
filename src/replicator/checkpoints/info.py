"""What a checkpoint is: the manifest's names and the value types the manager returns.

:class:`CheckpointInfo` is one manifest entry, :class:`Checkpoint` a loaded checkpoint,
:class:`VerifyReport` the result of re-hashing a directory. The manager
(:mod:`replicator.checkpoints.manager`) and the readers without a manager
(:mod:`replicator.checkpoints.describe`) share them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EVENTS",
    "FORMAT",
    "MANIFEST",
    "Checkpoint",
    "CheckpointFallbackWarning",
    "CheckpointInfo",
    "VerifyReport",
]

MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
FORMAT = 1


class CheckpointFallbackWarning(RuntimeWarning):
    """A requested checkpoint failed its check and an older valid one was loaded instead."""


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint as the manifest records it."""

    file: str
    path: Path
    seq: int
    step: int
    epoch: int | None
    metrics: dict[str, Any]
    size: int
    hash: str
    config_hash: str | None
    time: float

    @classmethod
    def from_entry(cls, directory: Path, entry: Mapping[str, Any]) -> CheckpointInfo:
        return cls(
            file=str(entry["file"]),
            path=directory / str(entry["file"]),
            seq=int(entry["seq"]),
            step=int(entry["step"]),
            epoch=entry.get("epoch"),
            metrics={k: _decode(v) for k, v in dict(entry.get("metrics") or {}).items()},
            size=int(entry["size"]),
            hash=str(entry["hash"]),
            config_hash=entry.get("config_hash"),
            time=float(entry["time"]),
        )


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the user's ``state``, its ``step`` and the manifest ``info``."""

    state: Any
    step: int
    epoch: int | None
    metrics: dict[str, Any]
    info: CheckpointInfo | None
    rng: dict[str, Any] | None = field(default=None, repr=False)
    fallback_from: str | None = None  # the file that failed, when this is a fallback


@dataclass(frozen=True)
class VerifyReport:
    """Result of re-hashing every checkpoint of a manifest."""

    directory: Path
    results: tuple[dict[str, Any], ...]  # file, step, status (ok|missing|mismatch|damaged), hashes
    orphans: tuple[str, ...]  # checkpoint files on disk that no manifest entry names

    @property
    def ok(self) -> bool:
        return all(r["status"] == "ok" for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "ok": self.ok,
            "checkpoints": list(self.results),
            "orphans": list(self.orphans),
        }


def _decode(value: Any) -> Any:
    from ..store.metrics import decode_value

    return decode_value(value)
