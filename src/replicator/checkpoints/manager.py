"""Checkpoints: a true latest plus the top-k best, atomic writes, hashes in a manifest, exact resume.

A :class:`CheckpointManager` owns one directory::

    checkpoints/
      manifest.json                     what exists: each checkpoint's step, epoch, metrics, size,
                                        content hash, config hash and time; latest and best
      events.jsonl                      fallbacks, superseded checkpoints, pickle opt-ins
      step000000120-000007.safetensors  one file per checkpoint (step, then save counter)

``save(state, step=...)`` adds every RNG stream (:func:`replicator.checkpoints.rng.rng_state`) to the user's
state, writes a safetensors file (see :mod:`replicator.checkpoints.file`) under a temporary name
with fsync, renames it into place and fsyncs the directory, then commits a new manifest
atomically, and only then deletes the files that are no longer kept.

Retention (documented in docs/checkpoints.md):

* *latest* is the most recent save; it is always kept, whatever its metrics.
* *last*: the ``keep_last`` most recent saves (``None`` keeps every checkpoint).
* *best*: the ``keep_best`` checkpoints with the best value of ``monitor`` (``mode`` "max" or
  "min"). A checkpoint whose monitored value is NaN, missing or not a number is never best. On a
  tie the earlier checkpoint ranks first (a later equal value does not displace it).

Resume reads the manifest, never file times. Loading a checkpoint re-hashes it; one that does not
match its manifest is refused, and ``load("latest")`` falls back to the newest valid one with a
warning, recording the fallback in ``events.jsonl``. Saving at step ``s`` after a resume
supersedes the checkpoints of the dead process with a step at or after ``s`` (and after the
loaded checkpoint's step): they leave the manifest and are deleted once the new file is safe.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._util.io import append_lines, atomic_write_json, fsync_dir, read_json, replacing
from .._util.warnings import warn
from ..errors import CheckpointError, CheckpointHashError, UsageError
from .describe import describe_checkpoints, read_checkpoint
from .file import Snapshot, hash_checkpoint
from .info import (
    EVENTS,
    FORMAT,
    MANIFEST,
    Checkpoint,
    CheckpointFallbackWarning,
    CheckpointInfo,
    VerifyReport,
    _decode,
)
from .read import read_checkpoint_file

__all__ = [
    "Checkpoint",
    "CheckpointFallbackWarning",
    "CheckpointHashError",
    "CheckpointInfo",
    "CheckpointManager",
    "VerifyReport",
    "describe_checkpoints",
    "read_checkpoint",
]

logger = logging.getLogger("replicator.checkpoints")
_FILE_RE = re.compile(r"^step(\d+)-(\d+)\.safetensors$")


def _encode(value: Any) -> Any:
    from ..store.metrics import encode_value

    return encode_value(value)


def _rank_value(value: Any) -> float | None:
    """The monitored value as a float, or None when it cannot rank (missing, NaN, text)."""
    value = _decode(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with one manifest entry (None: nothing): the fields resume relies on."""
    if not isinstance(entry, dict):
        return f"is a {type(entry).__name__}, not an object"
    if not isinstance(entry.get("file"), str) or not _FILE_RE.match(entry["file"]):
        return f"names the file {entry.get('file')!r}, not stepNNNNNNNNN-NNNNNN.safetensors"
    for key in ("seq", "step", "size"):
        value = entry.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"has {key} {value!r}, not a non-negative integer"
    epoch = entry.get("epoch")
    if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool)):
        return f"has epoch {epoch!r}, not an integer"
    if not isinstance(entry.get("hash"), str) or not isinstance(entry.get("time"), (int, float)):
        return "has no hash string or no time"
    if not isinstance(entry.get("metrics") or {}, dict):
        return "has metrics that are not an object"
    return None


class CheckpointManager:
    """Save, retain, verify and load the checkpoints of one directory (see the module docstring).

    ``every=N`` saves only at steps that are multiples of N (``save`` returns None otherwise,
    unless ``force=True``). ``async_save=True`` blocks only while the state is copied to host
    memory and writes in a background thread; at most one write is pending (a new save waits
    for it), and :meth:`wait`/:meth:`close` wait for it and raise its error, if any.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        monitor: str | None = None,
        mode: str = "max",
        keep_best: int | None = None,
        keep_last: int | None = 1,
        every: int | None = None,
        config_hash: str | None = None,
        async_save: bool = False,
    ) -> None:
        if mode not in ("max", "min"):
            raise UsageError(f"Checkpoint mode must be 'max' or 'min', got {mode!r}.")
        if keep_best is not None and keep_best > 0 and monitor is None:
            raise UsageError(
                f"keep_best={keep_best} needs a metric to rank by: pass monitor='val_acc' (a "
                "key of the metrics given to save())."
            )
        if keep_last is not None and keep_last < 1:
            raise UsageError(
                f"keep_last must be at least 1 (the latest checkpoint is always kept), got "
                f"{keep_last}; use None to keep every checkpoint."
            )
        if every is not None and every < 1:
            raise UsageError(f"every must be a positive number of steps, got {every}.")
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = mode
        self.keep_best = (1 if monitor else 0) if keep_best is None else max(0, keep_best)
        self.keep_last = keep_last
        self.every = every
        self.config_hash = config_hash
        self.async_save = async_save
        self._lock = threading.Lock()
        self._pending: threading.Thread | None = None
        self._error: BaseException | None = None
        self._fork_step: int | None = None
        self._cleaned = False
        self._saved_here = False
        self._pool: dict[str, Any] = {}  # host buffers reused by the next save's copy
        self._manifest = self._read_manifest()

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> CheckpointManager:
        """A manager for an existing directory, with the options its manifest recorded.

        ``directory`` may be a checkpoint directory or a run directory holding ``checkpoints/``.
        """
        path = Path(directory)
        if not (path / MANIFEST).exists() and (path / "checkpoints" / MANIFEST).exists():
            path = path / "checkpoints"
        if not (path / MANIFEST).exists():
            raise CheckpointError(
                f"No checkpoint manifest in {path}: nothing was saved there (run.checkpoint() "
                "or CheckpointManager.save() writes checkpoints/manifest.json)."
            )
        try:
            data = read_json(path / MANIFEST)
        except (OSError, ValueError) as exc:
            message = f"Checkpoint manifest {path / MANIFEST} cannot be read ({exc})."
            raise CheckpointError(message) from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"Checkpoint manifest {path / MANIFEST} has an unknown format.")
        return cls(
            path,
            monitor=data.get("monitor"),
            mode=data.get("mode") or "max",
            keep_best=data.get("keep_best"),
            keep_last=data.get("keep_last", 1),
            config_hash=data.get("config_hash"),
        )

    # -- manifest -------------------------------------------------------------------------

    def _read_manifest(self) -> dict[str, Any]:
        path = self.directory / MANIFEST
        if not path.exists():
            return {"format": FORMAT, "next_seq": 1, "checkpoints": [], "latest": None}
        try:
            data = read_json(path)
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"Checkpoint manifest {path} cannot be read ({exc}). It is written atomically, "
                "so this is damage from outside; restore it or move the directory away."
            ) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"Checkpoint manifest {path} has an unknown format.")
        entries = data.get("checkpoints")
        if not isinstance(entries, list) or not isinstance(data.get("next_seq", 1), int):
            raise CheckpointError(f"Checkpoint manifest {path} has no list of checkpoints.")
        for i, entry in enumerate(entries):
            problem = _entry_problem(entry)
            if problem:
                raise CheckpointError(
                    f"Checkpoint manifest {path}: checkpoint {i + 1} {problem}. The manifest is "
                    "written atomically, so this is damage from outside; restore it or move the "
                    "directory away."
                )
        return data

    def _entries(self) -> list[dict[str, Any]]:
        return list(self._manifest.get("checkpoints") or [])

    def checkpoints(self) -> list[CheckpointInfo]:
        """Every checkpoint in the manifest, oldest save first."""
        self.wait()
        return [CheckpointInfo.from_entry(self.directory, e) for e in self._entries()]

    @property
    def latest(self) -> CheckpointInfo | None:
        """The most recent save (as the manifest says; not checked against the disk)."""
        self.wait()
        entries = self._entries()
        return CheckpointInfo.from_entry(self.directory, entries[-1]) if entries else None

    @property
    def best(self) -> list[CheckpointInfo]:
        """The kept best checkpoints, best first (empty without ``monitor``)."""
        self.wait()
        return [CheckpointInfo.from_entry(self.directory, e) for e in self._best(self._entries())]

    def _best(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.monitor or self.keep_best == 0:
            return []
        ranked = []
        for entry in entries:
            value = _rank_value((entry.get("metrics") or {}).get(self.monitor))
            if value is not None:
                ranked.append((-value if self.mode == "max" else value, int(entry["seq"]), entry))
        ranked.sort(key=lambda r: (r[0], r[1]))  # ties: the earlier save ranks first
        return [r[2] for r in ranked[: self.keep_best]]

    def _event(self, event: dict[str, Any]) -> None:
        line = json.dumps({"time": round(time.time(), 6), **event}, default=str)
        try:
            append_lines(self.directory / EVENTS, [line], fsync=True)
        except OSError as exc:  # a read-only checkpoint directory still loads
            logger.warning("Could not record %s in %s: %s", event, self.directory / EVENTS, exc)

    # -- saving ---------------------------------------------------------------------------

    def save(
        self,
        state: Mapping[str, Any],
        *,
        step: int,
        epoch: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> CheckpointInfo | None:
        """Save ``state`` plus every RNG stream as the checkpoint of ``step``.

        Returns the new checkpoint's info (for an asynchronous save: once written, from
        :attr:`latest`; this call returns None), or None when ``every`` skips this step.
        """
        from .rng import rng_state

        try:
            valid = not isinstance(step, bool) and operator.index(step) >= 0
            if valid:  # numpy and torch integers too
                step = operator.index(step)
                epoch = None if epoch is None else operator.index(epoch)
        except TypeError:
            valid = False
        if not valid:
            raise UsageError(
                f"A checkpoint's step and epoch must be non-negative integers, got step={step!r}, "
                f"epoch={epoch!r}."
            )
        if not isinstance(state, Mapping):
            raise UsageError(
                f"A checkpoint's state must be a dict (e.g. {{'model': model.state_dict()}}), "
                f"got {type(state).__name__}."
            )
        if self.every and step % self.every and not force:
            return None
        self.wait()  # at most one write in flight; raises the previous write's error
        encoded_metrics = {str(k): _encode(v) for k, v in dict(metrics or {}).items()}
        tree = {
            "state": dict(state),
            "rng": rng_state(),
            "step": step,
            "epoch": epoch,
            "metrics": encoded_metrics,
        }
        snapshot = Snapshot(tree, copy=self.async_save, pool=self._pool)
        entry = {
            "step": step,
            "epoch": epoch,
            "metrics": encoded_metrics,
            "config_hash": self.config_hash,
        }
        if not self.async_save:
            return self._write(snapshot, entry)
        thread = threading.Thread(
            target=self._write_in_background,
            args=(snapshot, entry),
            name=f"replicator-checkpoint-{step}",
            daemon=False,  # the interpreter waits for a pending write at exit
        )
        self._pending = thread
        thread.start()
        return None

    def _write_in_background(self, snapshot: Snapshot, entry: dict[str, Any]) -> None:
        try:
            self._write(snapshot, entry)
        except BaseException as exc:  # re-raised in the training thread by wait()
            self._error = exc

    def _write(self, snapshot: Snapshot, entry: dict[str, Any]) -> CheckpointInfo:
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not self._cleaned:
                self._remove_leftovers()
                self._cleaned = True
            seq = int(self._manifest.get("next_seq", 1))
            name = f"step{entry['step']:09d}-{seq:06d}.safetensors"
            final = self.directory / name
            with replacing(final, fsync=False) as tmp:
                size, digest = snapshot.write(tmp)
            # No directory fsync here: the manifest's commit below fsyncs this same directory,
            # and a manifest naming a file whose rename was lost loads as missing -> fallback.
            entry = {"file": name, "seq": seq, **entry, "size": size, "hash": digest}
            entry["time"] = round(time.time(), 6)
            self._commit(entry)
            self._saved_here = True
            return CheckpointInfo.from_entry(self.directory, entry)

    def _commit(self, new: dict[str, Any]) -> None:
        """Write the manifest with ``new`` as latest, then delete what is no longer kept."""
        step = int(new["step"])
        fork = self._fork_step
        entries: list[dict[str, Any]] = []
        superseded: list[dict[str, Any]] = []
        for entry in self._entries():
            stale = int(entry["step"]) >= step or (fork is not None and entry["step"] > fork)
            (superseded if stale else entries).append(entry)
        entries.append(new)
        keep = {id(new)}
        if self.keep_last is None:
            keep.update(id(e) for e in entries)
        else:
            keep.update(id(e) for e in entries[-self.keep_last :])
        best = self._best(entries)
        keep.update(id(e) for e in best)
        kept = [e for e in entries if id(e) in keep]
        dropped = [e for e in entries if id(e) not in keep] + superseded
        manifest = {
            "format": FORMAT,
            "monitor": self.monitor,
            "mode": self.mode,
            "keep_best": self.keep_best,
            "keep_last": self.keep_last,
            "config_hash": self.config_hash,
            "next_seq": int(new["seq"]) + 1,
            "latest": new["file"],
            "best": [e["file"] for e in best],
            "checkpoints": kept,
        }
        atomic_write_json(self.directory / MANIFEST, manifest)
        self._manifest = manifest
        self._fork_step = None
        if superseded:
            self._event(
                {
                    "event": "superseded",
                    "by": new["file"],
                    "files": [e["file"] for e in superseded],
                    "reason": "a later save rewrote history from this step (resume)",
                }
            )
        for entry in dropped:
            try:
                os.unlink(self.directory / entry["file"])
            except FileNotFoundError:
                pass
        if dropped:
            fsync_dir(self.directory)

    def _remove_leftovers(self) -> None:
        """Delete temporary files of a killed write and files the manifest never committed."""
        named = {e["file"] for e in self._entries()}
        for path in self.directory.iterdir():
            leftover = path.name.startswith(".step") and path.name.endswith(".tmp")
            orphan = _FILE_RE.match(path.name) is not None and path.name not in named
            if leftover or orphan:
                try:
                    path.unlink()
                except OSError:
                    pass

    def wait(self) -> None:
        """Wait for a pending asynchronous write; raise its error, if it failed."""
        thread = self._pending
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            self._pending = None
        error, self._error = self._error, None
        if error is not None:
            raise CheckpointError(f"An asynchronous checkpoint save failed: {error}") from error

    def close(self) -> None:
        """Wait for pending writes (a run calls this when it finishes)."""
        self.wait()

    # -- loading --------------------------------------------------------------------------

    def load(
        self,
        which: str | int = "latest",
        *,
        restore_rng: bool = True,
        trust_pickle: bool = False,
        map_location: Any = None,
    ) -> Checkpoint | None:
        """Load ``"latest"`` (default), ``"best"`` or the checkpoint of a step; None if none.

        The file is re-hashed against the manifest first. For "latest" and "best", one that
        fails is skipped for the next newest (or next best) valid one, with a
        :class:`CheckpointFallbackWarning` and an entry in events.jsonl; a requested step that
        fails raises :class:`CheckpointError`. ``restore_rng`` restores every RNG stream
        (raising :class:`~replicator.errors.RNGRestoreError` when one cannot be).
        """
        self.wait()
        entries = self._entries()
        if which == "latest":
            candidates = list(reversed(entries))
        elif which == "best":
            if not self.monitor:
                raise UsageError(
                    "load('best') needs the metric the checkpoints are ranked by: create the "
                    "manager with monitor='...' (replicator.start(checkpoints={'monitor': ...}))."
                )
            candidates = self._best(entries)
        elif isinstance(which, int) and not isinstance(which, bool):
            candidates = [e for e in reversed(entries) if int(e["step"]) == which][:1]
            if not candidates:
                steps = ", ".join(str(e["step"]) for e in entries) or "none"
                raise CheckpointError(
                    f"No checkpoint of step {which} in {self.directory} (kept steps: {steps})."
                )
        else:
            raise UsageError(f"load() takes 'latest', 'best' or a step number, got {which!r}.")
        failed: list[tuple[str, str]] = []
        for entry in candidates:
            info = CheckpointInfo.from_entry(self.directory, entry)
            try:
                tree = read_checkpoint_file(
                    info.path,
                    expected_hash=info.hash,
                    trust_pickle=trust_pickle,
                    map_location=map_location,
                )
            except CheckpointError as exc:
                if not isinstance(which, str):
                    raise
                failed.append((info.file, str(exc)))
                self._event({"event": "invalid", "file": info.file, "reason": str(exc)})
                continue
            if failed:
                message = (
                    f"Checkpoint {failed[0][0]} in {self.directory} failed its check "
                    f"({failed[0][1]}); loaded {info.file} (step {info.step}) instead."
                )
                self._event(
                    {
                        "event": "fallback",
                        "wanted": which,
                        "failed": [f for f, _ in failed],
                        "loaded": info.file,
                    }
                )
                warn(message, CheckpointFallbackWarning)
            return self._finish_load(tree, info, restore_rng, failed[0][0] if failed else None)
        if failed:
            raise CheckpointError(
                f"No valid checkpoint in {self.directory}: every candidate failed its check "
                f"({'; '.join(f'{f}: {r}' for f, r in failed)})."
            )
        return None

    def _finish_load(
        self, tree: dict[str, Any], info: CheckpointInfo, restore_rng: bool, fallback: str | None
    ) -> Checkpoint:
        from .rng import restore_rng_state

        if info.config_hash and self.config_hash and info.config_hash != self.config_hash:
            logger.warning(
                "Checkpoint %s was saved with config %s; this run's config is %s.",
                info.file,
                info.config_hash[:12],
                self.config_hash[:12],
            )
        rng = tree.get("rng")
        if restore_rng and rng is not None:
            restore_rng_state(rng)
        if not self._saved_here:
            # Loaded before this process saved anything: a resume. The next save rewrites
            # history after this step. (A load in the middle of training is an evaluation.)
            self._fork_step = info.step
        return Checkpoint(
            state=tree.get("state"),
            step=info.step,
            epoch=info.epoch,
            metrics=info.metrics,
            info=info,
            rng=rng,
            fallback_from=fallback,
        )

    # -- checking -------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Re-hash every checkpoint in the manifest, read each one that matches (a file that
        matches a rewritten manifest can still be invalid: status ``damaged``, with a
        ``reason``), and list the files the manifest does not name."""
        self.wait()
        results = []
        for entry in self._entries():
            path = self.directory / entry["file"]
            result = {"file": entry["file"], "step": entry["step"], "expected": entry["hash"]}
            if not path.exists():
                result.update(status="missing", actual=None)
            else:
                actual = hash_checkpoint(path)
                result.update(status="ok" if actual == entry["hash"] else "mismatch")
                result["actual"] = actual
                result["size"] = path.stat().st_size
                if actual == entry["hash"]:
                    try:  # a file can match a rewritten manifest and still be crafted
                        read_checkpoint_file(path, map_location="cpu")
                    except CheckpointError as exc:
                        result.update(status="damaged", reason=str(exc))
            results.append(result)
        named = {e["file"] for e in self._entries()}
        orphans: tuple[str, ...] = ()
        if self.directory.is_dir():
            orphans = tuple(
                sorted(
                    p.name
                    for p in self.directory.iterdir()
                    if _FILE_RE.match(p.name) and p.name not in named
                )
            )
        return VerifyReport(directory=self.directory, results=tuple(results), orphans=orphans)

    def __repr__(self) -> str:
        return (
            f"CheckpointManager('{self.directory}', monitor={self.monitor!r}, mode={self.mode!r}, "
            f"keep_best={self.keep_best}, keep_last={self.keep_last})"
        )
