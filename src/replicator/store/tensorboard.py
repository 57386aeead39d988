"""Reading the scalars of TensorBoard event files, without TensorFlow, torch or protobuf.

An event file (``events.out.tfevents.*``) is a TFRecord file: each record is

    length (u64 little-endian) | masked crc32c of length (u32) | data | masked crc32c of data (u32)

and each record's data is an ``Event`` protocol buffer. Only the few fields a scalar needs are
decoded here, by hand: ``Event.wall_time`` (1, double), ``Event.step`` (2, int64),
``Event.file_version`` (3) and ``Event.summary`` (5) with its repeated ``Summary.Value`` (1):
``tag`` (1), ``simple_value`` (2, float; what ``SummaryWriter.add_scalar`` writes),
``tensor`` (8; what ``tf.summary.scalar`` and ``add_scalar(..., new_style=True)`` write) and
``metadata`` (9, whose ``plugin_data.plugin_name`` says that a tag's tensors are scalars).
Everything else (images, histograms, text, graphs) is skipped by its wire type.

The checksums are verified for every record, all records of one length at once with numpy (a
table-driven crc32c over the records' columns), so verifying costs a small part of decoding.

A damaged file is read up to the damage: a record cut short by a kill (the usual end of a log
whose writer died), a checksum that does not match, or data that is no ``Event`` stop the
reading there; the scalars before it are kept and :attr:`EventScalars.problem` says where and
why. A ``file_version`` other than ``brain.Event:1`` or ``2`` is read all the same, and said.
"""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EVENT_FILE_PREFIX",
    "EventScalars",
    "event_files_in",
    "find_event_files",
    "read_event_file",
    "walk_outputs",
]

EVENT_FILE_PREFIX = "events.out.tfevents."
"""How every TensorBoard event file's name starts (TensorFlow, torch, tensorboardX, Keras)."""

_KNOWN_VERSIONS = frozenset(("brain.Event:1", "brain.Event:2"))

# Directories never searched for event files: version control, environments, caches.
_SKIPPED_DIRS = frozenset(
    (".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", "site-packages")
)

_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_U64 = struct.Struct("<Q")
_MASK_DELTA = 0xA282EAD8

# TensorProto.dtype -> (struct format of one element in tensor_content, element size)
_DTYPES: dict[int, tuple[str, int]] = {
    1: ("<f", 4),  # DT_FLOAT
    2: ("<d", 8),  # DT_DOUBLE
    3: ("<i", 4),  # DT_INT32
    4: ("<B", 1),  # DT_UINT8
    5: ("<h", 2),  # DT_INT16
    6: ("<b", 1),  # DT_INT8
    9: ("<q", 8),  # DT_INT64
    10: ("<?", 1),  # DT_BOOL
    19: ("<e", 2),  # DT_HALF
}
_DT_BFLOAT16 = 14


@dataclass(frozen=True)
class EventScalars:
    """The scalars of one event file, in file order, and why reading stopped early (if it did).

    ``scalars`` holds ``(step, wall_time, tag, value)`` tuples. ``problem`` is None for a file
    read to its end; otherwise it names the byte offset and the record where the damage starts.
    ``notes`` are things worth saying that did not stop the reading (an unknown file version).
    """

    path: Path
    scalars: list[tuple[int, float, str, float]]
    problem: str | None = None
    notes: tuple[str, ...] = ()
    records: int = 0
    skipped_tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def tags(self) -> list[str]:
        """The scalar tags, in the order they first appear."""
        return list(dict.fromkeys(tag for _, _, tag, _ in self.scalars))


def walk_outputs(
    root: str | os.PathLike[str], *, skip: Iterable[str | os.PathLike[str]] = ()
) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` of what a command may have written under ``root``: each folder with its
    directory names as found (``.hydra`` included) and its file names. Hidden directories,
    virtual environments and the paths in ``skip`` (a store) are not entered."""
    skipped = {os.path.realpath(p) for p in skip}
    for folder, dirs, files in os.walk(root):
        yield folder, list(dirs), files
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _SKIPPED_DIRS
            and os.path.realpath(os.path.join(folder, d)) not in skipped
        ]


def event_files_in(folder: str, files: Iterable[str], *, since: float | None = None) -> list[Path]:
    """The event files among ``files`` of ``folder`` (modified at or after ``since``, if given)."""
    found: list[Path] = []
    for name in files:
        if not name.startswith(EVENT_FILE_PREFIX):
            continue
        path = os.path.join(folder, name)
        if since is not None:
            try:
                if os.stat(path).st_mtime < since:
                    continue
            except OSError:
                continue
        found.append(Path(path))
    return found


def find_event_files(
    root: str | os.PathLike[str],
    *,
    since: float | None = None,
    skip: Iterable[str | os.PathLike[str]] = (),
) -> list[Path]:
    """The event files under ``root`` (modified at or after ``since``, when given), sorted.

    Searched as :func:`walk_outputs` walks. Sorting by path keeps the files of one directory in
    the order they were written (their names start with the creation time).
    """
    return sorted(
        path
        for folder, _, files in walk_outputs(root, skip=skip)
        for path in event_files_in(folder, files, since=since)
    )


def read_event_file(path: str | os.PathLike[str]) -> EventScalars:
    """The scalars of one event file, read up to the end or to the first damaged record.

    Raises OSError when the file cannot be read at all; damage inside it is never an error.
    """
    path = Path(path)
    data = path.read_bytes()
    frames, cut = _frames(data)
    bad = _first_bad_checksum(data, frames)
    problem = cut
    if bad is not None:
        start = int(frames.starts[bad]) - 12
        problem = (
            f"record {bad + 1} at byte {start} has a wrong checksum (the file is corrupt "
            "from there on)"
        )
        frames = frames[:bad]
    scalars, decoder, failed = _decode(data, frames)
    if failed is not None:
        index, exc = failed
        at = int(frames.starts[index]) - 12
        problem = f"record {index + 1} at byte {at} is not a TensorBoard event ({exc})"
        frames = frames[:index]
    notes: tuple[str, ...] = ()
    if decoder.version is not None and decoder.version not in _KNOWN_VERSIONS:
        notes = (
            f"file version {decoder.version!r} is not one this reader knows (brain.Event:1 or "
            "2); its scalars were read as version 2 stores them",
        )
    return EventScalars(
        path=path,
        scalars=scalars,
        problem=problem,
        notes=notes,
        records=len(frames),
        skipped_tags=frozenset(decoder.skipped),
    )


class _Frames:
    """Where each whole record's data starts and ends in the file (two int64 arrays)."""

    def __init__(self, starts: Any, ends: Any) -> None:
        self.starts = starts
        self.ends = ends

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, cut: slice) -> _Frames:
        return _Frames(self.starts[cut], self.ends[cut])


def _frames(data: bytes) -> tuple[_Frames, str | None]:
    """Every whole record's data, and why the framing stopped early (None at the file's end)."""
    import numpy as np

    starts = array("q")
    append = starts.append
    unpack = _U64.unpack_from
    size = len(data)
    pos = 0
    problem = None
    while pos < size:
        if pos + 12 > size:
            problem = _cut(len(starts), pos, "its header")
            break
        end = pos + 12 + unpack(data, pos)[0]
        if end + 4 > size:
            problem = _cut(len(starts), pos, f"its {end - pos - 12} bytes of data")
            if _masked_crc(data[pos : pos + 8]) != int.from_bytes(
                data[pos + 8 : pos + 12], "little"
            ):
                problem = (
                    f"record {len(starts) + 1} at byte {pos} has a wrong length checksum (the "
                    "file is corrupt from there on)"
                )
            break
        append(pos + 12)
        pos = end + 4
    first = np.frombuffer(starts, dtype=np.int64) if starts else np.zeros(0, dtype=np.int64)
    ends = np.empty_like(first)
    if len(first):
        # a record's data ends 4 bytes before the next record's 12-byte header starts
        ends[:-1] = first[1:] - 16
        ends[-1] = pos - 4
    return _Frames(first, ends), problem


def _cut(count: int, pos: int, what: str) -> str:
    return (
        f"the file ends inside record {count + 1} at byte {pos}, before the end of {what} "
        "(a writer stopped in the middle of a write)"
    )


# ------------------------------------------------------------------------------------ crc32c
_TABLE: Any = None


def _table() -> Any:
    global _TABLE
    if _TABLE is None:
        import numpy as np

        table = np.zeros(256, dtype=np.uint32)
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table[n] = c
        _TABLE = table
    return _TABLE


def _masked_crc(chunk: bytes) -> int:
    """The masked crc32c of one byte string (TFRecord's checksum)."""
    table = _table()
    crc = 0xFFFFFFFF
    for byte in chunk:
        crc = int(table[(crc ^ byte) & 0xFF]) ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _first_bad_checksum(data: bytes, frames: _Frames) -> int | None:
    """The index of the first record whose length or data checksum fails, or None."""
    if not len(frames):
        return None
    import numpy as np

    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = frames.starts, frames.ends
    bad = np.zeros(len(frames), dtype=bool)
    # the length fields (8 bytes at start - 12) against the 4 bytes at start - 4
    bad |= _crcs(buf, starts - 12, 8) != _stored(buf, starts - 4)
    lengths = ends - starts
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        bad[rows] |= _crcs(buf, starts[rows], int(length)) != _stored(buf, ends[rows])
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else None


def _crcs(buf: Any, starts: Any, length: int) -> Any:
    """The masked crc32c of ``length`` bytes at each of ``starts``, all at once."""
    import numpy as np

    table = _table()
    crc = np.full(len(starts), 0xFFFFFFFF, dtype=np.uint32)
    for i in range(length):
        crc = table[(crc ^ buf[starts + i]) & 0xFF] ^ (crc >> 8)
    crc ^= np.uint32(0xFFFFFFFF)
    return ((crc >> 15) | (crc << 17)) + np.uint32(_MASK_DELTA)


def _stored(buf: Any, at: Any) -> Any:
    import numpy as np

    b = [buf[at + i].astype(np.uint32) for i in range(4)]
    return b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)


# ------------------------------------------------------------------------------ decoding
Scalar = tuple[int, float, str, float]


def _decode(
    data: bytes, frames: _Frames
) -> tuple[list[Scalar], _Decoder, tuple[int, Exception] | None]:
    """The scalars of ``frames`` in file order, the decoder of the other records, and the
    first record that is no Event (its index and why), if one is not.

    The record ``add_scalar`` writes is decoded for all records at once (:func:`_simple`);
    every other record (tensors, images, the file version) by :class:`_Decoder`, one by one.
    """
    fast_index, fast = _simple(data, frames)
    decoder = _Decoder()
    slow: list[tuple[int, Scalar]] = []
    failed: tuple[int, Exception] | None = None
    if len(fast_index) < len(frames):
        is_fast = set(fast_index)
        for index, (start, end) in enumerate(zip(frames.starts.tolist(), frames.ends.tolist())):
            if index in is_fast:
                continue
            before = len(decoder.scalars)
            try:
                decoder.event(data, start, end)
            except (_Malformed, IndexError, struct.error, ValueError) as exc:
                failed = (index, exc)
                break
            slow += [(index, s) for s in decoder.scalars[before:]]
    if failed is not None:
        keep = sum(1 for i in fast_index if i < failed[0])
        fast_index, fast = fast_index[:keep], fast[:keep]
    if not slow:
        return fast, decoder, failed
    merged: list[Scalar] = []
    position = 0
    for index, scalar in slow:  # both in file order: a linear merge
        while position < len(fast) and fast_index[position] < index:
            merged.append(fast[position])
            position += 1
        merged.append(scalar)
    merged += fast[position:]
    return merged, decoder, failed


def _simple(data: bytes, frames: _Frames) -> tuple[list[int], list[Scalar]]:
    """The records that are ``Event{wall_time, step, summary{value{tag, simple_value}}}`` with
    one-byte lengths (what ``add_scalar`` writes for a tag under 121 bytes), decoded together
    with numpy: their indices and scalars, in file order."""
    import numpy as np

    if not len(frames):
        return [], []
    buf = np.frombuffer(data, dtype=np.uint8)
    last = len(buf) - 1
    starts, ends = frames.starts, frames.ends

    def at(pos: Any) -> Any:  # the bytes at ``pos`` (clipped: a wrong guess only fails a test)
        return buf[np.minimum(pos, last)].astype(np.int64)

    ok = (ends - starts >= 20) & (at(starts) == 0x09)
    here = starts + 9
    has_step = at(here) == 0x10
    step = np.zeros(len(frames), dtype=np.uint64)
    size = np.zeros(len(frames), dtype=np.int64)
    going = has_step.copy()
    for k in range(10):  # the step's varint, one byte position at a time
        byte = at(here + 1 + k)
        bits = (byte & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        step |= np.where(going, bits, np.uint64(0)).astype(np.uint64)
        size += going
        going &= byte >= 0x80
    ok &= ~going
    here = np.where(has_step, here + 1 + size, here)
    tag_size = at(here + 5)
    ok &= (at(here) == 0x2A) & (at(here + 1) == tag_size + 9) & (at(here + 2) == 0x0A)
    ok &= (at(here + 3) == tag_size + 7) & (at(here + 4) == 0x0A) & (tag_size < 0x80)
    ok &= (at(here + 6 + tag_size) == 0x15) & (here + 11 + tag_size == ends)
    rows = np.flatnonzero(ok)
    if not len(rows):
        return [], []
    starts, here, tag_size = starts[rows], here[rows], tag_size[rows]
    wall = _gather(buf, starts + 1, 8).view("<f8").ravel()
    values = _gather(buf, here + 7 + tag_size, 4).view("<f4").ravel().astype(np.float64)
    tags = np.empty(len(rows), dtype=object)
    for length in np.unique(tag_size).tolist():
        group = np.flatnonzero(tag_size == length)
        if not length:
            tags[group] = ""
            continue
        raw = _gather(buf, here[group] + 6, length)
        unique, inverse = np.unique(
            raw.view(np.dtype((np.void, length))).ravel(), return_inverse=True
        )
        names = np.array([bytes(u).decode("utf-8", "replace") for u in unique], dtype=object)
        tags[group] = names[inverse.ravel()]
    steps = step[rows].view(np.int64)
    scalars = list(zip(steps.tolist(), wall.tolist(), tags.tolist(), values.tolist()))
    return rows.tolist(), scalars


def _gather(buf: Any, starts: Any, length: int) -> Any:
    """The ``length`` bytes at each of ``starts``, as a (len(starts), length) array."""
    import numpy as np

    out = np.empty((len(starts), length), dtype=np.uint8)
    for k in range(length):
        out[:, k] = buf[starts + k]
    return out


# ---------------------------------------------------------------------------- protobuf wire
class _Malformed(Exception):
    """The bytes are no protocol buffer of the expected message."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _Malformed(f"a number runs past the end of its field at byte {pos}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed(f"a number longer than 10 bytes at byte {pos}")


def _skip(data: bytes, pos: int, end: int, wire: int) -> int:
    if wire == 0:
        return _varint(data, pos, end)[1]
    if wire == 1:
        pos += 8
    elif wire == 2:
        length, pos = _varint(data, pos, end)
        pos += length
    elif wire == 5:
        pos += 4
    else:
        raise _Malformed(f"wire type {wire} at byte {pos}")
    if pos > end:
        raise _Malformed(f"a field runs past the end of its message at byte {pos}")
    return pos


def _fields(data: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end or varint value) of a message."""
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = _varint(data, pos, end)
            if pos + length > end:
                raise _Malformed(f"field {number} runs past the end of its message")
            yield number, wire, pos, pos + length
            pos += length
        elif wire == 0:
            value, pos = _varint(data, pos, end)
            yield number, wire, pos, value
        else:
            after = _skip(data, pos, end, wire)
            yield number, wire, pos, after
            pos = after


class _Decoder:
    """Decodes Event records one by one, collecting their scalars."""

    def __init__(self) -> None:
        self.scalars: list[tuple[int, float, str, float]] = []
        self.version: str | None = None
        self.plugins: dict[str, str] = {}  # tag -> plugin name from its first metadata
        self.skipped: set[str] = set()  # tags with values that are no scalar

    def event(self, data: bytes, pos: int, end: int) -> None:
        wall_time = 0.0
        step = 0
        summary: tuple[int, int] | None = None
        while pos < end:
            key = data[pos]
            pos += 1
            if key == 0x09:  # wall_time, the common first field
                if pos + 8 > end:
                    raise _Malformed("wall_time runs past the end of the record")
                (wall_time,) = _DOUBLE.unpack_from(data, pos)
                pos += 8
            elif key == 0x10:  # step
                step, pos = _varint(data, pos, end)
                if step >= 1 << 63:
                    step -= 1 << 64
            elif key == 0x2A:  # summary
                length, pos = _varint(data, pos, end)
                summary = (pos, pos + length)
                pos += length
            elif key == 0x1A:  # file_version
                length, pos = _varint(data, pos, end)
                self.version = data[pos : pos + length].decode("utf-8", "replace")
                pos += length
            else:
                if key >= 0x80:
                    key, pos = _varint(data, pos - 1, end)
                pos = _skip(data, pos, end, key & 7)
        if pos != end:
            raise _Malformed("a field runs past the end of the record")
        if summary is not None:
            if summary[1] > end:
                raise _Malformed("the summary runs past the end of the record")
            self.summary(data, summary[0], summary[1], step, wall_time)

    def summary(self, data: bytes, pos: int, end: int, step: int, wall_time: float) -> None:
        append = self.scalars.append
        for number, wire, start, stop in _fields(data, pos, end):
            if number != 1 or wire != 2:
                continue
            tag, value = self.value(data, start, stop)
            if value is not None and tag is not None:
                append((step, wall_time, tag, value))

    def value(self, data: bytes, pos: int, end: int) -> tuple[str | None, float | None]:
        # The common case first: tag (1) then simple_value (2) and nothing else.
        if end - pos > 2 and data[pos] == 0x0A:
            length = data[pos + 1]
            after = pos + 2 + length
            if length < 0x80 and after + 5 == end and data[after] == 0x15:
                name = data[pos + 2 : after].decode("utf-8", "replace")
                return name, _FLOAT.unpack_from(data, after + 1)[0]
        tag: str | None = None
        simple: float | None = None
        tensor: tuple[int, int] | None = None
        plugin: str | None = None
        for number, wire, start, stop in _fields(data, pos, end):
            if number == 1 and wire == 2:
                tag = data[start:stop].decode("utf-8", "replace")
            elif number == 2 and wire == 5:
                simple = _FLOAT.unpack_from(data, start)[0]
            elif number == 8 and wire == 2:
                tensor = (start, stop)
            elif number == 9 and wire == 2:
                plugin = _plugin_name(data, start, stop)
        if tag is None:
            return None, None
        if plugin is not None:
            self.plugins.setdefault(tag, plugin)
        if simple is not None:
            return tag, simple
        if tensor is not None:
            if self.plugins.get(tag) == "scalars":
                scalar = _tensor_scalar(data, tensor[0], tensor[1])
                if scalar is not None:
                    return tag, scalar
            self.skipped.add(tag)
        return tag, None


def _plugin_name(data: bytes, pos: int, end: int) -> str | None:
    """SummaryMetadata.plugin_data.plugin_name, or "scalars" for DATA_CLASS_SCALAR."""
    name = None
    for number, wire, start, stop in _fields(data, pos, end):
        if number == 1 and wire == 2:  # plugin_data
            for inner, inner_wire, a, b in _fields(data, start, stop):
                if inner == 1 and inner_wire == 2:
                    name = data[a:b].decode("utf-8", "replace")
        elif number == 4 and wire == 0 and stop == 1:  # data_class: DATA_CLASS_SCALAR
            name = name or "scalars"
    return name


def _tensor_scalar(data: bytes, pos: int, end: int) -> float | None:
    """The one number of a TensorProto holding exactly one numeric element, else None."""
    dtype = 0
    elements = 1
    content: bytes | None = None
    values: list[float] = []
    for number, wire, start, stop in _fields(data, pos, end):
        if number == 1 and wire == 0:
            dtype = stop
        elif number == 2 and wire == 2:  # tensor_shape: the product of its dims
            for dim, dim_wire, a, b in _fields(data, start, stop):
                if dim == 2 and dim_wire == 2:
                    for part, part_wire, _, size in _fields(data, a, b):
                        if part == 1 and part_wire == 0:
                            elements *= size
        elif number == 4 and wire == 2:
            content = data[start:stop]
        elif number == 5:  # float_val, packed or not
            values += _packed(data, start, stop, wire, _FLOAT)
        elif number == 6:  # double_val
            values += _packed(data, start, stop, wire, _DOUBLE)
        elif number in (7, 10, 11, 13, 16, 17):  # int_val, int64_val, bool_val, half_val, uint*
            values += _packed_varints(data, start, stop, wire, half=number == 13)
    if elements != 1:
        return None
    if content is not None:
        if dtype == _DT_BFLOAT16 and len(content) == 2:
            return float(_FLOAT.unpack(b"\x00\x00" + content)[0])
        fmt = _DTYPES.get(dtype)
        if fmt is None or len(content) != fmt[1]:
            return None
        return float(struct.unpack(fmt[0], content)[0])
    if len(values) == 1 and dtype in _DTYPES:
        return float(values[0])
    return None


def _packed(data: bytes, start: int, stop: int, wire: int, kind: struct.Struct) -> list[float]:
    if wire == 2:
        return [v for (v,) in kind.iter_unpack(data[start:stop])]
    if (wire == 5 and kind.size == 4) or (wire == 1 and kind.size == 8):
        return [kind.unpack_from(data, start)[0]]
    return []


def _packed_varints(data: bytes, start: int, stop: int, wire: int, *, half: bool) -> list[float]:
    if wire == 0:
        raw = [stop]
    elif wire == 2:
        raw = []
        pos = start
        while pos < stop:
            value, pos = _varint(data, pos, stop)
            raw.append(value)
    else:
        return []
    if half:  # half_val holds the 16 bits of a float16 (or bfloat16) in an int32
        return [struct.unpack("<e", (v & 0xFFFF).to_bytes(2, "little"))[0] for v in raw]
    return [float(v - (1 << 64) if v >= 1 << 63 else v) for v in raw]
