"""The Python API of a run: the :class:`Run` that ``replicator.start()`` gives
(:mod:`replicator.record.opening` opens, joins or resumes it).

A :class:`Run` logs metrics, holds summary values, saves and loads checkpoints and finishes the
record; everything is seeded with the run's seed unless ``seed_frameworks=False``.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank that calls ``start()`` records into one run
per launch (see :mod:`replicator.record.distributed` and docs/distributed.md): rank ``r`` logs to
its own ``metrics.rank{r}.jsonl``, and only rank 0 writes ``summary.json`` and checkpoints. On
the other ranks ``run.summary`` is an ordinary dict that is never written, ``run.checkpoint``
flushes the rank's metrics and returns None, and ``finish`` records only the rank's own status.
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._util.io import atomic_write_json, read_json
from .._util.warnings import warn
from ..errors import UsageError
from ..store.metrics import encode_value, metrics_path
from .distributed import (
    DistributedContext,
    failed_ranks,
    write_rank_record,
)
from .metrics import MetricsWriter
from .recorder import (
    set_status,
    touch_heartbeat,
)
from .seeding import SeedReport, stop_seeding_on_import

if TYPE_CHECKING:
    import numpy as np

    from ..checkpoints.manager import Checkpoint, CheckpointInfo, CheckpointManager

__all__ = ["Run", "Summary", "activate", "active_run", "check_none_open", "install_signal_handlers"]

_active: Run | None = None


def active_run() -> Run | None:
    """The run this process is recording into, if any."""
    return _active


class Summary(dict):
    """Final metrics of a run: a dict written to summary.json (atomically) on every flush.

    A value set here (``run.summary[key] = v``, ``update``) is *explicit* and wins over the
    last logged value of a metric of the same name. A resumed run starts with the summary the
    earlier sessions left (readable here, but not explicit): a metric logged after the resume
    replaces such a value, as it would have in a run never interrupted.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dirty = False
        self.explicit: set[str] = set(self)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.explicit.add(key)
        self.dirty = True

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.explicit.discard(key)
        self.dirty = True

    def update(self, *args: Any, **kwargs: Any) -> None:
        values = dict(*args, **kwargs)
        super().update(values)
        self.explicit.update(values)
        self.dirty = True

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def load_previous(self, values: Mapping[str, Any]) -> None:
        """The summary an earlier session of a resumed run left: kept until newer values come."""
        for key, value in values.items():
            if key not in self.explicit:
                super().__setitem__(key, value)


class Run:
    """A run being recorded: ``log`` metrics, set ``summary`` values, find files in ``dir``."""

    def __init__(
        self,
        *,
        run_id: str,
        run_dir: Path,
        experiment: str,
        seed: int,
        config: Any,
        owned: bool,
        meta: dict[str, Any] | None = None,
        seed_report: SeedReport | None = None,
        distributed: DistributedContext | None = None,
    ) -> None:
        self.id = run_id
        self.dir = run_dir
        self.experiment = experiment
        self.seed = seed
        self.config = config
        self.owned = owned
        self.seed_report = seed_report
        self.distributed = distributed
        self.rank = distributed.rank if distributed else 0
        """This process's rank (0 unless launched by torchrun with ``WORLD_SIZE`` > 1)."""
        self.world_size = distributed.world_size if distributed else 1
        self.resumed = False
        self.summary = Summary()
        self._meta = meta or {}
        self._closed = False
        self._capture_thread: threading.Thread | None = None
        self._checkpoints: CheckpointManager | None = None
        self._rng: np.random.Generator | None = None
        self._checkpoint_options: dict[str, Any] = {}
        existing = self.dir / "summary.json"
        if self.rank == 0 and existing.exists():
            try:
                previous = read_json(existing)
            except (OSError, ValueError):
                previous = None
            if isinstance(previous, dict):
                self.summary.load_previous(previous)
        self._metrics = MetricsWriter(metrics_path(self.dir, self.rank), on_tick=self._tick)

    @property
    def rng(self) -> np.random.Generator:
        """A numpy Generator from ``SeedSequence(run.seed)`` (built on first use).

        It is registered for checkpoints (as ``run.rng``), so a resumed run draws on from where
        the checkpoint left it.
        """
        if self._rng is None:
            import numpy as np

            from ..checkpoints.rng import register_rng

            self._rng = np.random.default_rng(np.random.SeedSequence(self.seed))
            register_rng(self._rng, name="run.rng")
        return self._rng

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record metric values at ``step`` (default: one past the previous step).

        Each value is read at the call: a dict reused between calls or a tensor updated in place
        afterwards does not change what was logged. Values are numbers (int, float, bool, numpy
        scalars, one-element arrays and tensors) or strings; anything else raises
        :class:`~replicator.errors.UsageError` and nothing of that call is recorded.
        """
        try:
            self._metrics.log(metrics, step)
        except UsageError as exc:
            raise UsageError(f"run.log in run {self.id}: {exc}") from exc.__cause__

    def _tick(self) -> None:
        # The summary follows the metrics every second, so a crashed run still shows how far
        # it got in `ls` and `show`.
        if self.rank != 0:
            return
        if self.summary.dirty or self._metrics.changed:
            self._metrics.changed = False
            self._write_summary()
        if self.owned:
            touch_heartbeat(self.dir)

    def _write_summary(self) -> None:
        self.summary.dirty = False
        if self.rank != 0:  # one summary per run: rank 0's
            return
        # What an earlier session left, under the metrics logged since, under explicit values.
        summary = self.summary
        merged = {str(k): _encoded(v) for k, v in summary.items() if k not in summary.explicit}
        merged.update(self._metrics.last)
        merged.update({str(k): _encoded(v) for k, v in summary.items() if k in summary.explicit})
        atomic_write_json(self.dir / "summary.json", merged, fsync=False)

    @property
    def checkpoints(self) -> CheckpointManager:
        """The run's :class:`~replicator.checkpoints.CheckpointManager` (in ``dir/checkpoints``)."""
        if self._checkpoints is None:
            from ..checkpoints.manager import CheckpointManager

            self._checkpoints = CheckpointManager(
                self.dir / "checkpoints",
                config_hash=self._meta.get("config_hash"),
                **self._checkpoint_options,
            )
        return self._checkpoints

    def checkpoint(
        self,
        state: Mapping[str, Any],
        *,
        step: int,
        metrics: Mapping[str, Any] | None = None,
        epoch: int | None = None,
    ) -> CheckpointInfo | None:
        """Save ``state`` (and every RNG stream) as a checkpoint at ``step``; see CheckpointManager.

        In a distributed run only rank 0 saves; on the other ranks this flushes the rank's
        metrics and returns None (every rank may call it, as DDP scripts usually do on rank 0).
        """
        # Metrics up to this step must be on disk before the checkpoint is: a resume continues
        # from the checkpoint and never logs the earlier steps again.
        self._metrics.flush()
        if self.rank != 0:
            return None
        return self.checkpoints.save(state, step=step, metrics=metrics, epoch=epoch)

    def load_checkpoint(self, which: str | int = "latest", **options: Any) -> Checkpoint | None:
        """Load a checkpoint (latest valid by default, ``"best"`` or a step) and restore RNGs.

        In a resumed run, metrics logged by the dead process after the checkpoint's step are
        marked superseded (kept on disk, hidden from readers) and logging goes on from there.
        """
        restore = options.pop("restore_rng", True)
        loaded = self.checkpoints.load(which, restore_rng=False, **options)
        if restore and loaded is not None and loaded.rng is not None:
            from ..checkpoints.rng import restore_rng_state

            saved = loaded.rng.get("generators") if isinstance(loaded.rng, dict) else None
            if isinstance(saved, dict) and "run.rng" in saved:
                # Built only when the checkpoint has it: a run that never drew from run.rng
                # must not save it from now on (its checkpoints would differ from the
                # uninterrupted run's).
                _ = self.rng
            restore_rng_state(loaded.rng)
        if loaded is not None and self.resumed:
            self._metrics.write_event(
                {"event": "resume", "step": int(loaded.step), "time": time.time()}
            )
            self._metrics._next_step = int(loaded.step) + 1
        return loaded

    def flush(self) -> None:
        """Write buffered metrics and the summary now."""
        self._metrics.flush()
        self._write_summary()

    def finish(self, status: str = "completed", **fields: Any) -> None:
        """Flush and, for a run this process owns, record the final status."""
        global _active
        if self._closed:
            return
        self._closed = True
        if self._checkpoints is not None:
            self._checkpoints.close()  # waits for pending asynchronous writes
        if self._rng is not None:
            from ..checkpoints.rng import unregister_rng

            unregister_rng("run.rng")
        self._metrics.close()
        try:
            self._write_summary()
        except Exception as exc:  # a summary value never costs the run its status
            fields["summary_error"] = f"{type(exc).__name__}: {exc}"[:2000]
        lost = self._metrics.error
        if lost:
            # The run may end 'completed', but never silently without its metrics.
            fields["metrics_error"] = lost
        if self._capture_thread is not None:
            self._capture_thread.join(timeout=60)
        if self.distributed is not None:
            status = self._finish_rank(status, fields)
        if self.owned:
            set_status(self.dir, self._meta, status, **fields)
        if _active is self:
            _active = None
            stop_seeding_on_import()
        _restore_handlers()
        if lost:
            warn(f"Run {self.id}: {lost}", RuntimeWarning)

    def _finish_rank(self, status: str, fields: dict[str, Any]) -> str:
        """Record this rank's end; rank 0 of a run it owns does not end 'completed' when another
        rank failed (a rank that ends later is judged by readers from its own record)."""
        if self.distributed is None:
            return status
        own = {k: v for k, v in fields.items() if k in ("exit_code", "signal", "error")}
        try:
            write_rank_record(self.dir, self.distributed, status, **own)
        except Exception as exc:  # the rank's record never costs the run its status
            fields["rank_record_error"] = f"{type(exc).__name__}: {exc}"[:2000]
        if self.rank != 0 or not self.owned:
            return status
        failures = failed_ranks(self.dir)
        if failures:
            fields["rank_errors"] = failures
            if status == "completed":
                fields["error"] = failures[0]
                return "failed"
        return status

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status, fields = _status_for(exc_type, exc)
        self.finish(status, **fields)

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, experiment={self.experiment!r}, seed={self.seed}, dir='{self.dir}')"


def _is_number_like(value: Any) -> bool:
    return isinstance(value, (int, float)) or hasattr(value, "item")


def _encoded(value: Any) -> Any:
    return encode_value(value) if _is_number_like(value) else value


def _status_for(
    exc_type: type[BaseException] | None, exc: BaseException | None
) -> tuple[str, dict[str, Any]]:
    if exc_type is None:
        return "completed", {"exit_code": 0}
    if issubclass(exc_type, KeyboardInterrupt):
        return "interrupted", {"error": "KeyboardInterrupt"}
    if issubclass(exc_type, _Terminated):
        return "interrupted", {"signal": "SIGTERM", "error": "terminated (SIGTERM)"}
    if issubclass(exc_type, SystemExit):
        code = getattr(exc, "code", 0)
        if code in (None, 0):
            return "completed", {"exit_code": 0}
        return "failed", {
            "exit_code": code if isinstance(code, int) else 1,
            "error": f"SystemExit({code!r})",
        }
    return "failed", {"error": f"{exc_type.__name__}: {exc}"[:2000]}


class _Terminated(SystemExit):
    """Raised in the main thread when an owned run receives SIGTERM."""


_previous_handlers: dict[int, Any] = {}


def install_signal_handlers() -> None:
    """SIGTERM ends an owned run as 'interrupted' (main thread only; a handler of the user's stays)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):

        def on_term(signum: int, frame: Any) -> None:
            raise _Terminated(128 + signum)

        _previous_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)


def _restore_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in list(_previous_handlers.items()):
        signal.signal(signum, handler)
        del _previous_handlers[signum]


def _finish_at_exit() -> None:
    run = _active
    if run is not None and not run._closed:
        failed = getattr(sys, "last_value", None)
        run.finish(
            "failed" if failed else "completed",
            **({"error": repr(failed)} if failed else {"exit_code": 0}),
        )


atexit.register(_finish_at_exit)


def check_none_open() -> None:
    """Raise UsageError when this process has a run open already (one run at a time)."""
    if _active is not None and not _active._closed:
        raise UsageError(
            f"A run ({_active.id}) is already open in this process. Finish it (leave its `with` "
            "block or call run.finish()) before starting another."
        )


def activate(run: Run) -> None:
    """Make ``run`` the process's open run (:func:`active_run`, finished at exit)."""
    global _active
    _active = run
