"""One checkpoint file: a safetensors file whose metadata holds everything that is not a tensor.

A checkpoint is written as a standard safetensors file (8-byte little-endian header length, a JSON
header, raw little-endian tensor bytes), readable by any safetensors reader. Torch tensors and
numpy arrays become its tensors; the rest of the state (numbers, strings, lists, tuples, dicts
with any keys, bytes) is encoded as tagged JSON in the header's ``__metadata__["replicator"]``,
with each tensor replaced by a reference to its name. Nothing is ever pickled.

Writing streams each tensor's memory to the file (no serialised copy) while a second thread
hashes the same bytes with BLAKE3, so the content hash costs no extra pass. Reading, which trusts
nothing in the file, is :mod:`replicator.checkpoints.read`.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import struct
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._util import hashing
from ..errors import CheckpointError

logger = logging.getLogger("replicator.checkpoints")

MAGIC = "replicator-checkpoint/1"
MAX_HEADER = 100 * 2**20  # the safetensors reference limit
CHUNK = 64 * 2**20  # hash/write pipeline granularity
MAX_DEPTH = 100  # nesting of a state; deeper metadata is refused before it can exhaust the stack
MAX_NDIM = 32  # numpy's limit on a tensor's dimensions

_TORCH_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}
_NUMPY_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint64": "U64",
    "uint32": "U32",
    "uint16": "U16",
    "uint8": "U8",
    "bool": "BOOL",
}
_ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip


def _is_torch_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "untyped_storage")


def _is_ndarray(obj: Any) -> bool:
    return type(obj).__name__ == "ndarray" and type(obj).__module__ == "numpy"


def _is_numpy_scalar(obj: Any) -> bool:
    return type(obj).__module__ == "numpy" and hasattr(obj, "dtype") and hasattr(obj, "item")


class _Encoder:
    """Turn a state tree into tagged JSON plus a list of (name, array-like) to store as tensors."""

    def __init__(self, *, copy: bool, pool: dict[str, Any] | None = None) -> None:
        self.copy = copy  # asynchronous saves copy tensors to host memory now
        # Host buffers reused from the previous asynchronous save: copying into memory that is
        # already mapped avoids the page faults of a fresh allocation (most of the copy's cost).
        self.pool = pool if pool is not None else {}
        self.cuda = False
        self.arrays: list[tuple[str, str, Any]] = []  # (name, safetensors dtype, object)
        self.names: set[str] = set()
        self.depth = 0

    def _name(self, path: str) -> str:
        name = path or "tensor"
        n = 1
        while name in self.names:
            n += 1
            name = f"{path}#{n}"
        self.names.add(name)
        return name

    def encode(self, obj: Any, path: str) -> Any:
        if self.depth > MAX_DEPTH:
            raise CheckpointError(
                f"state{_where(path)} nests more than {MAX_DEPTH} levels deep, which a "
                "checkpoint refuses to load; flatten the state."
            )
        self.depth += 1
        try:
            return self._encode(obj, path)
        finally:
            self.depth -= 1

    def _encode(self, obj: Any, path: str) -> Any:
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            if math.isfinite(obj):
                return float(obj)
            return {"$float": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if _is_torch_tensor(obj):
            return self._tensor(obj, path)
        if _is_ndarray(obj) or _is_numpy_scalar(obj):
            return self._ndarray(obj, path)
        if isinstance(obj, (bytes, bytearray)):
            return {"$bytes": base64.b64encode(bytes(obj)).decode("ascii")}
        if isinstance(obj, tuple):
            return {"$tuple": [self.encode(v, f"{path}.{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, f"{path}.{i}") for i, v in enumerate(obj)]
        if isinstance(obj, Mapping):
            items = list(obj.items())
            if all(isinstance(k, str) and not k.startswith("$") for k, _ in items):
                return {k: self.encode(v, _join(path, k)) for k, v in items}
            return {
                "$dict": [
                    [self.encode(k, f"{path}.key"), self.encode(v, _join(path, str(k)))]
                    for k, v in items
                ]
            }
        raise CheckpointError(
            f"state{_where(path)} is a {type(obj).__module__}.{type(obj).__qualname__}, which a "
            "checkpoint cannot hold without pickling. A checkpoint holds tensors, numpy arrays, "
            "numbers, strings, bytes, None and lists/tuples/dicts of these: save its "
            ".state_dict() or convert it to plain data."
        )

    def _tensor(self, t: Any, path: str) -> dict[str, Any]:
        import torch

        if t.layout != torch.strided or t.is_quantized:
            raise CheckpointError(
                f"state{_where(path)} is a {t.layout} tensor; store it dense (.to_dense())."
            )
        code = _TORCH_DTYPES.get(str(t.dtype).removeprefix("torch."))
        if code is None:
            raise CheckpointError(
                f"state{_where(path)} has dtype {t.dtype}, which safetensors cannot store; "
                "convert it (e.g. torch.view_as_real for complex tensors)."
            )
        device = str(t.device)
        t = t.detach()
        name = self._name(path)
        if self.copy or t.device.type != "cpu":
            buf = self.pool.get(name)
            if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
                pin = t.device.type == "cuda"
                buf = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=pin)
                self.pool[name] = buf
            self.cuda = self.cuda or t.device.type == "cuda"
            buf.copy_(t, non_blocking=t.device.type == "cuda")
            t = buf
        else:
            t = t.contiguous()
        self.arrays.append((name, code, t))
        return {"$tensor": name, "device": device}

    def _ndarray(self, a: Any, path: str) -> dict[str, Any]:
        import numpy as np

        scalar = not _is_ndarray(a)
        arr = np.asarray(a)
        code = _NUMPY_DTYPES.get(arr.dtype.name)
        if code is None:
            raise CheckpointError(
                f"state{_where(path)} is a numpy array of dtype {arr.dtype}, which safetensors "
                "cannot store; convert it to a numeric dtype or a list."
            )
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        name = self._name(path)
        if self.copy:
            buf = self.pool.get(name)
            if not isinstance(buf, np.ndarray) or buf.shape != arr.shape or buf.dtype != arr.dtype:
                buf = np.empty(arr.shape, dtype=arr.dtype)
                self.pool[name] = buf
            np.copyto(buf, arr)
            arr = buf
        elif not arr.flags.c_contiguous:
            arr = np.array(arr, copy=True, order="C")  # (ascontiguousarray makes 0-d 1-d)
        self.arrays.append((name, code, arr))
        entry: dict[str, Any] = {"$ndarray": name}
        if scalar:
            entry["scalar"] = True
        return entry


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _where(path: str) -> str:
    parts = path.split(".") if path else []
    if parts[:1] == ["state"]:
        parts = parts[1:]  # paths are shown relative to the user's state
    return "".join(f"[{p!r}]" for p in parts)


def _raw_bytes(obj: Any) -> memoryview:
    """The bytes of a contiguous CPU tensor or array, without copying."""
    if _is_ndarray(obj):
        return memoryview(obj.reshape(-1).view("uint8"))
    import torch

    flat = obj.reshape(-1)
    if flat.numel() == 0:
        return memoryview(b"")
    return memoryview(flat.view(torch.uint8).numpy())


class Snapshot:
    """A state encoded for writing: the JSON metadata and the tensors (copied if ``copy``)."""

    def __init__(
        self, tree: Mapping[str, Any], *, copy: bool, pool: dict[str, Any] | None = None
    ) -> None:
        encoder = _Encoder(copy=copy, pool=pool)
        self.meta = json.dumps({"format": MAGIC, **encoder.encode(dict(tree), "")}, allow_nan=False)
        # Wider dtypes first: every tensor then starts at an offset aligned to its item size.
        self.arrays = sorted(encoder.arrays, key=lambda a: -_ITEMSIZE[a[1]])

    def write(self, path: Path, *, fsync: bool = True) -> tuple[int, str]:
        """Write the file; returns (size, ``blake3:<hex>``) of exactly the bytes written."""
        import blake3

        header: dict[str, Any] = {"__metadata__": {"format": MAGIC, "replicator": self.meta}}
        views = []
        offset = 0
        for name, code, obj in self.arrays:
            view = _raw_bytes(obj)
            header[name] = {
                "dtype": code,
                "shape": list(obj.shape),
                "data_offsets": [offset, offset + view.nbytes],
            }
            offset += view.nbytes
            views.append(view)
        text = json.dumps(header, separators=(",", ":")).encode("utf-8")
        text += b" " * (-(8 + len(text)) % 8)  # data starts 8-byte aligned
        head = struct.pack("<Q", len(text)) + text
        hasher = blake3.blake3()
        pieces: list[memoryview] = [memoryview(head)]
        for view in views:
            pieces.extend(view[i : i + CHUNK] for i in range(0, view.nbytes, CHUNK))
        hashed: list[memoryview | None] = []
        ready = threading.Condition()

        def hash_all() -> None:
            # BLAKE3 releases the GIL: hashing piece i overlaps writing piece i.
            i = 0
            while True:
                with ready:
                    while len(hashed) <= i:
                        ready.wait()
                    piece = hashed[i]
                if piece is None:
                    return
                hasher.update(piece)
                i += 1

        worker = threading.Thread(target=hash_all, name="replicator-hash", daemon=True)
        worker.start()
        size = 0
        try:
            with open(path, "wb") as f:
                for piece in pieces:
                    with ready:
                        hashed.append(piece)
                        ready.notify()
                    f.write(piece)
                    size += piece.nbytes
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
        finally:
            with ready:
                hashed.append(None)
                ready.notify()
            worker.join()
        if os.stat(path).st_size != size:
            raise CheckpointError(f"Checkpoint {path} has the wrong size after writing.")
        return size, f"{hashing.ALGORITHM}:{hasher.hexdigest()}"


def hash_checkpoint(path: str | os.PathLike[str]) -> str:
    """The ``blake3:<hex>`` a manifest records for a checkpoint file."""
    return hashing.hash_file(path, labelled=True)
