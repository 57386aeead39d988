"""BLAKE3 content hashes of files and buffers: one routine behind every hash replicator records.

Two recorded forms exist and stay as they are: ``outputs.json`` and the run listings hold the bare
hex digest, a checkpoint manifest holds it labelled with its algorithm (``blake3:<hex>``). The
caller says which with ``labelled``.
"""

from __future__ import annotations

import os

__all__ = ["ALGORITHM", "hash_buffer", "hash_file"]

ALGORITHM = "blake3"


def hash_file(path: str | os.PathLike[str], *, labelled: bool = False) -> str:
    """BLAKE3 of a file's bytes (memory-mapped, multi-threaded for big files).

    ``<hex>``, or ``blake3:<hex>`` when ``labelled``.
    """
    import blake3

    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if os.path.getsize(path) > 0:  # an empty file cannot be memory-mapped
        hasher.update_mmap(os.fspath(path))
    return _format(hasher.hexdigest(), labelled=labelled)


def hash_buffer(data: bytes | bytearray | memoryview, *, labelled: bool = False) -> str:
    """BLAKE3 of bytes already in memory (multi-threaded), in the same forms as :func:`hash_file`."""
    import blake3

    return _format(
        blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest(), labelled=labelled
    )


def _format(hexdigest: str, *, labelled: bool) -> str:
    return f"{ALGORITHM}:{hexdigest}" if labelled else str(hexdigest)
