"""Reading one checkpoint file without trusting it: every field is checked before use.

The file's hash is checked against the manifest first, then its header (dtypes, shapes, offsets
that tile the data exactly) and its metadata (each tag, the nesting depth, the types of step,
epoch, metrics and the RNG state), and only then are tensors built over one buffer without
copying. A file that passes its hash check can still have been crafted (by someone who rewrote
the manifest too): it is refused with :class:`~replicator.errors.CheckpointError` naming the file
and what is wrong, never with the parser's own exception. Nothing is ever unpickled unless the
caller passes ``trust_pickle=True`` for a pickle or ``torch.save`` file it trusts.
"""

from __future__ import annotations

import base64
import json
import math
import os
import struct
from pathlib import Path
from typing import Any, TypeGuard

from .._util import hashing
from ..errors import CheckpointError, CheckpointHashError
from .file import (
    _ITEMSIZE,
    _NUMPY_DTYPES,
    _TORCH_DTYPES,
    MAGIC,
    MAX_DEPTH,
    MAX_HEADER,
    MAX_NDIM,
    logger,
)

__all__ = ["check_checkpoint_file", "check_hash", "read_checkpoint_file"]


class _Invalid(Exception):
    """What is wrong with a checkpoint file; the public functions add where, and what to do."""


class _Foreign(_Invalid):
    """The file is no replicator checkpoint at all (a pickle, a zip, some other file)."""


def read_checkpoint_file(
    path: str | os.PathLike[str],
    *,
    expected_hash: str | None = None,
    trust_pickle: bool = False,
    map_location: Any = None,
) -> dict[str, Any]:
    """Read one checkpoint file and return its decoded tree (``state``, ``rng``, ...).

    Raises :class:`CheckpointHashError` when ``expected_hash`` does not match, and
    :class:`CheckpointError` when the file is damaged or is not a replicator checkpoint:
    every field of the header and the metadata is checked before anything is built from it.
    """
    path = Path(path)
    buf = _read_all(path)
    if expected_hash is not None:
        check_hash(buf, expected_hash, path)
    try:
        meta, entries, data_start = _parse_header(buf, len(buf))
        tree = _decode_meta(meta)
        decoder = _Decoder(_tensors(buf, entries, data_start), map_location, path)
        return _check_tree(decoder.decode(tree), dry=False)
    except _Foreign as exc:
        kind = _looks_like(buf)
        if trust_pickle and kind:
            return _unpickle(path, map_location)
        if kind:
            raise CheckpointError(
                f"{path} is not a replicator checkpoint ({kind}). It is not loaded because "
                "unpickling can run arbitrary code. If you trust this file, load it with "
                "trust_pickle=True (the opt-in is logged)."
            ) from None
        raise CheckpointError(
            f"{path} is not a replicator checkpoint: {exc}. Nothing in it was loaded."
        ) from None
    except _Invalid as exc:
        raise CheckpointError(
            f"Checkpoint {path} is invalid: {exc}. Nothing in it was loaded; load another "
            "checkpoint (load('latest') falls back to the newest valid one)."
        ) from None


def _read_all(path: Path) -> bytearray:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            buf = bytearray(size)
            if f.readinto(buf) != size:
                raise CheckpointError(f"Checkpoint {path} changed while it was read.")
    except FileNotFoundError as exc:
        raise CheckpointError(f"Checkpoint file {path} is missing.") from exc
    except IsADirectoryError as exc:
        raise CheckpointError(f"Checkpoint {path} is a directory, not a file.") from exc
    return buf


def check_hash(buf: bytes | bytearray | memoryview, expected_hash: str, path: Path) -> str:
    """The buffer's ``blake3:<hex>``; raises :class:`CheckpointHashError` if not expected."""
    actual = hashing.hash_buffer(buf, labelled=True)
    if actual != expected_hash:
        raise CheckpointHashError(
            f"Checkpoint {path} does not match its manifest: content hash {actual[:19]}..., "
            f"recorded {str(expected_hash)[:19]}... ({len(buf)} bytes on disk). The file was "
            "truncated or altered after it was written."
        )
    return actual


def check_checkpoint_file(path: str | os.PathLike[str]) -> str | None:
    """What is wrong with a checkpoint's header and metadata (None: nothing), tensors unread.

    Reads only the header, so listing many large checkpoints stays cheap; the tensor bytes and
    the hash are checked by :func:`read_checkpoint_file`.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) == 8:
                (n,) = struct.unpack("<Q", head)
                if n <= MAX_HEADER and 8 + n <= size:
                    head += f.read(n)
        meta, entries, _ = _parse_header(head, size)
        dry: dict[str, tuple[str, list[int], memoryview | None]] = {
            name: (e["dtype"], e["shape"], None) for name, e in entries.items()
        }
        _check_tree(_Decoder(dry, "cpu", path).decode(_decode_meta(meta)), dry=True)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    except _Foreign as exc:
        return f"it is not a replicator checkpoint ({_looks_like(head) or exc})"
    except _Invalid as exc:
        return str(exc)
    return None


def _looks_like(buf: bytes | bytearray) -> str | None:
    # A pickle starts with PROTO (0x80) and its version; a header length can too, but then a
    # JSON object follows at byte 8.
    if buf[:1] == b"\x80" and buf[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and buf[8:9] != b"{":
        return "it looks like a Python pickle"
    if buf[:2] == b"PK":
        return "it looks like a torch.save zip archive, which holds a pickle"
    return None


def _unpickle(path: Path, map_location: Any) -> dict[str, Any]:
    logger.warning("Unpickling %s because trust_pickle=True was given: it can run code.", path)
    import zipfile

    try:
        if zipfile.is_zipfile(path):  # torch.save's format
            import torch

            obj = torch.load(path, map_location=map_location, weights_only=False)
        else:
            import pickle

            with open(path, "rb") as f:
                obj = pickle.load(f)  # an explicit opt-in by the caller
    except Exception as exc:  # whatever a broken pickle raises; the caller asked to unpickle
        raise CheckpointError(f"{path} cannot be unpickled ({type(exc).__name__}: {exc}).") from exc
    return {"state": obj, "rng": None, "pickled": True}


def _parse_header(buf: bytes | bytearray, size: int) -> tuple[str, dict[str, dict[str, Any]], int]:
    """(metadata JSON, checked tensor entries, data start) from a buffer holding the header.

    Raises :class:`_Foreign` when this is no safetensors file with replicator metadata, and
    :class:`_Invalid` when it is one whose header is wrong.
    """
    if size < 8:
        raise _Foreign(f"it is {size} bytes long, shorter than a header")
    (n,) = struct.unpack("<Q", bytes(buf[:8]))
    if n > MAX_HEADER:
        raise _Foreign(f"its header length field says {n} bytes, over the {MAX_HEADER} limit")
    if 8 + n > size:
        raise _Foreign(f"its header length field ({n} bytes) runs past the end of the file")
    try:
        text = bytes(buf[8 : 8 + n]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Foreign(f"its header is not UTF-8 (byte {exc.start + 8})") from None
    try:
        header = json.loads(text)
    except RecursionError:
        raise _Foreign("its header nests too deeply to be a safetensors header") from None
    except ValueError as exc:
        raise _Foreign(f"its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _Foreign(f"its header is a JSON {type(header).__name__}, not an object")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or meta.get("format") != MAGIC:
        raise _Foreign(f"its header has no __metadata__ with format '{MAGIC}'")
    if not isinstance(meta.get("replicator"), str):
        raise _Invalid("__metadata__.replicator is not a JSON string")
    spans = []
    for name, entry in header.items():
        problem = _entry_problem(entry)
        if problem:
            raise _Invalid(f"tensor '{name}' {problem}")
        spans.append((entry["data_offsets"][0], entry["data_offsets"][1], name))
    data_len = size - 8 - n
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            what = "overlaps the one before it" if begin < position else "leaves a hole before it"
            raise _Invalid(f"tensor '{name}' (bytes {begin}..{end}) {what}")
        position = end
    if position != data_len:
        raise _Invalid(
            f"it holds {data_len} bytes of tensor data and its header describes {position} "
            "(truncated or padded)",
        )
    return meta["replicator"], header, 8 + n


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with one tensor entry of a safetensors header (None: nothing)."""
    if not isinstance(entry, dict):
        return f"is described by a JSON {type(entry).__name__}, not an object"
    code, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(code, str) or code not in _ITEMSIZE:
        return f"has dtype {code!r}, not one of {', '.join(_ITEMSIZE)}"
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        return f"has shape {shape!r}, not a list of at most {MAX_NDIM} sizes"
    if not all(_is_int(s) and 0 <= s < 2**63 for s in shape):
        return f"has shape {shape!r}, whose sizes are not all non-negative integers"
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(x) for x in offsets)):
        return f"has data_offsets {offsets!r}, not two integers"
    begin, end = offsets
    if not 0 <= begin <= end:
        return f"has data_offsets {offsets!r}, not 0 <= begin <= end"
    if end - begin != math.prod(shape) * _ITEMSIZE[code]:
        return f"has {end - begin} bytes for shape {shape} of {code}"
    return None


def _decode_meta(meta: str) -> dict[str, Any]:
    try:
        tree = json.loads(meta)
    except RecursionError:
        raise _Invalid(f"its metadata nests more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise _Invalid(f"its metadata is not valid JSON ({exc})") from None
    if not isinstance(tree, dict) or tree.pop("format", None) != MAGIC:
        raise _Invalid(f"its metadata is not a JSON object of format '{MAGIC}'")
    return tree


def _check_tree(tree: Any, *, dry: bool) -> dict[str, Any]:
    """The decoded tree, once its top-level fields have the types a checkpoint writes.

    ``dry``: tensors were checked, not built (they are None), so the RNG state is checked only
    for its shape."""
    from .rng import rng_state_problem

    if not isinstance(tree, dict):
        raise _Invalid(f"its metadata decodes to a {type(tree).__name__}, not a dict")
    step, epoch, metrics, rng = (tree.get(k) for k in ("step", "epoch", "metrics", "rng"))
    if "step" in tree and not (_is_int(step) and step >= 0):
        raise _Invalid(f"its step is {step!r}, not a non-negative integer")
    if not (epoch is None or _is_int(epoch)):
        raise _Invalid(f"its epoch is {epoch!r}, not an integer")
    if not (metrics is None or isinstance(metrics, dict)):
        raise _Invalid(f"its metrics are a {type(metrics).__name__}, not a dict")
    if rng is not None:
        problem = rng_state_problem(rng, dry=dry)
        if problem:
            raise _Invalid(f"its random state is invalid ({problem})")
    return tree


def _tensors(
    buf: bytearray, entries: dict[str, dict[str, Any]], start: int
) -> dict[str, tuple[str, list[int], memoryview | None]]:
    view = memoryview(buf)
    out: dict[str, tuple[str, list[int], memoryview | None]] = {}
    for name, entry in entries.items():
        begin, end = entry["data_offsets"]
        out[name] = (entry["dtype"], entry["shape"], view[start + begin : start + end])
    return out


_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class _Decoder:
    """Tagged JSON -> the state tree, checking every tag; a view of None checks without building."""

    def __init__(
        self,
        arrays: dict[str, tuple[str, list[int], memoryview | None]],
        map_location: Any,
        path: Path,
    ) -> None:
        self.arrays = arrays
        self.map_location = map_location
        self.path = path

    def _raw(self, name: Any) -> tuple[str, list[int], memoryview | None]:
        if not isinstance(name, str) or name not in self.arrays:
            raise _Invalid(f"it refers to tensor {name!r}, which it does not hold")
        return self.arrays[name]

    def decode(self, obj: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise _Invalid(f"its metadata nests more than {MAX_DEPTH} levels deep")
        if isinstance(obj, list):
            return [self.decode(v, depth + 1) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if "$tensor" in obj:
            return self._tensor(obj)
        if "$ndarray" in obj:
            return self._ndarray(obj)
        if "$tuple" in obj:
            return tuple(self.decode(v, depth + 1) for v in self._list(obj, "$tuple"))
        if "$dict" in obj:
            return dict(self._pair(item, depth) for item in self._list(obj, "$dict"))
        if "$float" in obj:
            if not isinstance(obj["$float"], str) or obj["$float"] not in _FLOATS:
                raise _Invalid(f"it holds the float {obj['$float']!r}")
            return _FLOATS[obj["$float"]]
        if "$bytes" in obj:
            try:
                return base64.b64decode(obj["$bytes"], validate=True)
            except (TypeError, ValueError):
                raise _Invalid("it holds bytes that are not base64") from None
        return {k: self.decode(v, depth + 1) for k, v in obj.items()}

    def _list(self, obj: dict[str, Any], tag: str) -> list[Any]:
        if not isinstance(obj[tag], list):
            raise _Invalid(f"its {tag} holds a {type(obj[tag]).__name__}, not a list")
        return obj[tag]

    def _pair(self, item: Any, depth: int) -> tuple[Any, Any]:
        if not (isinstance(item, list) and len(item) == 2):
            raise _Invalid("a $dict item is not a [key, value] pair")
        key = _hashable(self.decode(item[0], depth + 1))
        try:
            hash(key)
        except TypeError:
            raise _Invalid(f"a $dict key is a {type(key).__name__}") from None
        return key, self.decode(item[1], depth + 1)

    def _ndarray(self, obj: dict[str, Any]) -> Any:
        code, shape, view = self._raw(obj["$ndarray"])
        numpy_name = {v: k for k, v in _NUMPY_DTYPES.items()}.get(code)
        if numpy_name is None:
            raise _Invalid(f"numpy array '{obj['$ndarray']}' has dtype {code}")
        if view is None:
            return None
        import numpy as np

        dtype = np.dtype(numpy_name).newbyteorder("<")
        if view.nbytes and _misaligned(view, dtype.itemsize):
            view = memoryview(bytearray(view))
        arr = np.frombuffer(view, dtype=dtype).reshape(shape)
        return arr[()] if obj.get("scalar") is True else arr

    def _tensor(self, obj: dict[str, Any]) -> Any:
        code, shape, view = self._raw(obj["$tensor"])
        device = self.map_location if self.map_location is not None else obj.get("device", "cpu")
        if not isinstance(device, str) and self.map_location is None:
            raise _Invalid(f"tensor '{obj['$tensor']}' has device {device!r}")
        if view is None:
            return None
        try:
            import torch
        except ImportError:
            raise CheckpointError(
                f"Checkpoint {self.path} holds torch tensors and torch cannot be imported here: "
                "install torch to load it."
            ) from None
        dtype = getattr(torch, {v: k for k, v in _TORCH_DTYPES.items()}[code])
        if view.nbytes == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            if _misaligned(view, _ITEMSIZE[code]):
                view = memoryview(bytearray(view))
            t = torch.frombuffer(view, dtype=dtype).reshape(shape)
        if str(device) != "cpu":
            try:
                t = t.to(device)
            except (RuntimeError, AssertionError, ValueError) as exc:
                raise CheckpointError(
                    f"Checkpoint {self.path}: cannot put tensor '{obj['$tensor']}' on {device} "
                    f"({exc}). Load with map_location='cpu'."
                ) from exc
        return t


def _misaligned(view: memoryview, itemsize: int) -> bool:
    import numpy as np

    return bool(np.frombuffer(view, dtype=np.uint8).ctypes.data % itemsize)


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    return key
