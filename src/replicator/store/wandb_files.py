"""Reading the metrics of W&B's run files (``wandb/offline-run-*/run-*.wandb``).

Every W&B run, offline or online, writes its records to a ``run-<id>.wandb`` file in its folder
under ``wandb/``; ``wandb sync`` uploads an offline run from it. The file is a LevelDB log:

    ":W&B" | magic 0xBEE1 (u16 little-endian) | version (u8, 0)
    then 32 KiB blocks of chunks: crc32 (u32) | length (u16) | type (u8) | data

where a chunk's type says whether it holds a whole record (1) or its first (2), a middle (3) or
the last (4) part, a block's last bytes are zero padding when fewer than 7 remain, and the
checksum is zlib's crc32 of the type byte and the data. Each record is a ``wandb.proto``
``Record`` message, decoded with W&B's own generated classes (so ``wandb`` must be installed:
``pip install 'replicator[wandb]'``). Read here: the ``run`` record (id, name, project, start
time, config) and every ``history`` record (what ``wandb.log`` wrote: one row per step, whose
``_step`` and ``_timestamp`` give the step and wall time of its numbers).

A damaged file is read up to the damage: a chunk cut short by a kill, a checksum that does not
match, or data that is no ``Record`` stop the reading there; the values before it are kept and
:attr:`ToolRun.problem` says where. A version other than 0 is read all the same, and said.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .._util.deps import require
from .tensorboard import walk_outputs
from .tool_runs import Scalar, ToolRun

__all__ = ["find_wandb_files", "is_wandb_file", "read_wandb_file", "wandb_files_in"]

TOOL = "wandb"
_MAGIC = b":W&B\xe1\xbe"
_HEADER = 7
_BLOCK = 32768
_CHUNK = struct.Struct("<IHB")
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def is_wandb_file(name: str) -> bool:
    """Whether a file name is that of a W&B run file (``run-<id>.wandb``)."""
    return name.startswith("run-") and name.endswith(".wandb")


def find_wandb_files(
    root: str | os.PathLike[str],
    *,
    since: float | None = None,
    skip: Iterable[str | os.PathLike[str]] = (),
) -> list[Path]:
    """The W&B run files under ``root`` (modified at or after ``since``, if given), sorted."""
    return sorted(
        path
        for folder, _, files in walk_outputs(root, skip=skip)
        for path in wandb_files_in(folder, files, since=since)
    )


def wandb_files_in(folder: str, files: Iterable[str], *, since: float | None = None) -> list[Path]:
    """The W&B run files among ``files`` of ``folder`` (modified at or after ``since``)."""
    found: list[Path] = []
    for name in files:
        if is_wandb_file(name):
            path = Path(folder, name)
            try:
                if since is not None and path.stat().st_mtime < since:
                    continue
            except OSError:
                continue
            found.append(path)
    return found


def read_wandb_file(path: str | os.PathLike[str]) -> ToolRun:
    """The scalars of one W&B run file, read up to its end or to the first damaged record.

    Raises OSError when the file cannot be read at all and MissingDependencyError when
    ``wandb`` is not installed; damage inside the file is never an error.
    """
    path = Path(path)
    data = path.read_bytes()
    pb = require("wandb.proto.wandb_internal_pb2", purpose="reading W&B run files")
    reader = _Reader(path)
    problem, notes = _check_header(data)
    if problem is None:
        for number, (offset, record) in enumerate(_records(data), start=1):
            if isinstance(record, str):
                problem = record
                break
            message = pb.Record()
            try:
                message.ParseFromString(record)
            except Exception as exc:  # protobuf's DecodeError, whichever implementation
                problem = f"record {number} at byte {offset} is not a W&B record ({exc})"
                break
            reader.record(message)
    if problem is not None:
        problem += f"; imported the {len(reader.scalars)} value(s) before it"
    return ToolRun(
        tool=TOOL,
        path=path,
        run_id=reader.run_id or path.stem.removeprefix("run-"),
        name=reader.name,
        experiment=reader.project,
        scalars=reader.scalars,
        params=reader.config,
        started=reader.started,
        ended=reader.ended,
        status=reader.status,
        problem=problem,
        notes=notes,
    )


def _check_header(data: bytes) -> tuple[str | None, tuple[str, ...]]:
    if len(data) < _HEADER:
        return f"the file ends inside its {_HEADER}-byte header", ()
    if data[:6] != _MAGIC:
        return "the file does not start as a W&B run file (':W&B' and its magic number)", ()
    if data[6] != 0:
        return None, (
            f"file version {data[6]} is not one this reader knows (0); it was read as version 0",
        )
    return None, ()


def _records(data: bytes) -> Iterator[tuple[int, bytes | str]]:
    """Each whole record's offset and bytes; a string (and the end) where the file is damaged."""
    pos = _HEADER
    size = len(data)
    parts: list[bytes] = []
    start = pos
    count = 0
    while pos < size:
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        if pos + _HEADER > size:
            yield pos, _cut(count, pos, "its chunk header")
            return
        crc, length, kind = _CHUNK.unpack_from(data, pos)
        if crc == 0 and length == 0 and kind == 0:  # zero padding up to the block's end
            pos += left
            continue
        end = pos + _HEADER + length
        if end > size:
            yield pos, _cut(count, pos, f"its {length} bytes of data")
            return
        chunk = data[pos + _HEADER : end]
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            yield (
                pos,
                (
                    f"record {count + 1} at byte {pos} has a wrong checksum (the file is corrupt "
                    "from there on)"
                ),
            )
            return
        if kind in (_FULL, _FIRST):
            parts, start = [], pos
        elif kind not in (_MIDDLE, _LAST) or not parts:
            yield pos, f"record {count + 1} at byte {pos} has a chunk of unknown type {kind}"
            return
        parts.append(chunk)
        pos = end
        if kind in (_FULL, _LAST):
            count += 1
            yield start, b"".join(parts)
            parts = []
    if parts:
        yield start, _cut(count, start, "its last part (it was written in parts)")


def _cut(count: int, pos: int, what: str) -> str:
    return (
        f"the file ends inside record {count + 1} at byte {pos}, before the end of {what} (a "
        "writer stopped in the middle of a write)"
    )


class _Reader:
    """What the records of one file say: the run's facts and its history's numbers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id: str | None = None
        self.name: str | None = None
        self.project: str | None = None
        self.started: float | None = None
        self.ended: float | None = None
        self.status: str | None = "interrupted"  # until an exit record says how it ended
        self.config: dict[str, Any] = {}
        self.scalars: list[Scalar] = []
        self._step = -1

    def record(self, message: Any) -> None:
        kind = message.WhichOneof("record_type")
        if kind == "history":
            self._history(message.history)
        elif kind == "run":
            run = message.run
            self.run_id = run.run_id or self.run_id
            self.name = run.display_name or self.name
            self.project = run.project or self.project
            if run.HasField("start_time"):
                self.started = run.start_time.seconds + run.start_time.nanos / 1e9
            for item in run.config.update:
                key = item.key or ".".join(item.nested_key)
                if key and not key.startswith("_"):
                    self.config[key] = _json(item.value_json)
        elif kind == "exit":
            self.status = "completed" if message.exit.exit_code == 0 else "failed"

    def _history(self, history: Any) -> None:
        row: dict[str, Any] = {}
        for item in history.item:
            key = item.key or ".".join(item.nested_key)
            row[key] = _json(item.value_json)
        step = row.get("_step")
        if not isinstance(step, int) or isinstance(step, bool):
            step = history.step.num if history.HasField("step") else self._step + 1
        self._step = step
        wall = row.get("_timestamp")
        wall = float(wall) if isinstance(wall, (int, float)) else math.nan
        if wall == wall:
            self.ended = wall
        for key, value in row.items():
            if key.startswith("_") or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                self.scalars.append((step, wall, key, float(value)))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
