"""The Python API of a run: ``replicator.start()`` and the :class:`Run` it gives.

``start()`` either joins the run that ``replicator run`` opened for this process (the launcher
owns the record: status, capture, output) or, under plain ``python``, opens a run of its own and
records the same things. Either way the script gets a :class:`Run` to log metrics to and to set
summary values on, and everything is seeded with the run's seed unless ``seed_frameworks=False``.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank that calls ``start()`` records into one run
per launch (see :mod:`replicator.record.distributed` and docs/distributed.md): rank ``r`` logs to
its own ``metrics.rank{r}.jsonl``, and only rank 0 writes ``summary.json`` and checkpoints. On
the other ranks ``run.summary`` is an ordinary dict that is never written, ``run.checkpoint``
flushes the rank's metrics and returns None, and ``finish`` records only the rank's own status.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._protocol import (
    REPLICATOR_RUN_DIR,
    REPLICATOR_SEED,
    ChildContext,
    read_script_config,
    write_experiment,
)
from .._util.io import atomic_write_json, read_json
from .._util.warnings import warn
from .._version import __version__
from ..config import config_hash, to_container
from ..errors import StoreError, UsageError
from ..store import Store, StoreLike
from ..store.metrics import encode_value, metrics_path
from .capture_child import capture_result, start_capture
from .distributed import (
    DistributedContext,
    failed_ranks,
    launch_command,
    publish_run,
    wait_for_run,
    write_rank_record,
)
from .metrics import MetricsWriter
from .recorder import (
    capture_all,
    fingerprint_config_data,
    new_run,
    record_config,
    recordable_config,
    set_status,
    touch_heartbeat,
)
from .script import check_run_overrides, joined_context, record_script_config, sources_of
from .seeding import SeedReport, check_seed, seed_everything, seed_loaded, stop_seeding_on_import

if TYPE_CHECKING:
    import numpy as np

    from ..checkpoints.manager import Checkpoint, CheckpointInfo, CheckpointManager

__all__ = ["Run", "Summary", "active_run", "start"]

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


def _install_handlers() -> None:
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


def start(
    config: Any = None,
    *,
    experiment: str | None = None,
    name: str | None = None,
    seed: int | None = None,
    deterministic: bool = False,
    seed_frameworks: bool = True,
    store: StoreLike = None,
    resume: str | os.PathLike[str] | None = None,
    resume_completed: bool = False,
    checkpoints: Mapping[str, Any] | None = None,
) -> Run:
    """Open (or join) a run and seed everything with its seed; use it as a context manager.

    ``config`` may be a DictConfig from :func:`load_config`, a dict, a dataclass or an argparse
    Namespace. Under ``replicator run`` the run, its seed and its experiment are the CLI's.
    ``resume`` (a run id) continues that run's record with its seed: ``run.resumed`` is True and
    ``run.load_checkpoint()`` gives the state back. A completed run is only continued with
    ``resume_completed=True``. ``checkpoints`` holds the options of the
    run's :class:`~replicator.checkpoints.CheckpointManager` (monitor, mode, keep_best, ...).

    Under ``torchrun`` every rank may call ``start()``: all ranks of one launch record into one
    run (rank 0 opens it; the others join it, waiting for rank 0 up to
    ``$REPLICATOR_RENDEZVOUS_TIMEOUT_S`` when no ``replicator run`` opened it), each rank with
    its own metrics file; see docs/distributed.md.
    """
    global _active
    if _active is not None and not _active._closed:
        raise UsageError(
            f"A run ({_active.id}) is already open in this process. Finish it (leave its `with` "
            "block or call run.finish()) before starting another."
        )
    context = joined_context()
    distributed = DistributedContext.from_environ()
    if context is not None:
        run = _join(
            context,
            config,
            experiment=experiment,
            deterministic=deterministic,
            seed_frameworks=seed_frameworks,
            distributed=distributed,
        )
    elif distributed is not None and not distributed.is_main:
        if resume is not None:
            run_dir = Store.coerce(store).resolve(os.fspath(resume))
        else:
            _run_id, run_dir = wait_for_run(Store.coerce(store).root, distributed)
        run = _attach(run_dir, config, distributed=distributed, seed_frameworks=seed_frameworks)
        run.resumed = resume is not None
        _install_handlers()
    elif resume is not None:
        run = _resume(
            config,
            resume,
            seed_frameworks=seed_frameworks,
            store=store,
            resume_completed=resume_completed,
        )
    else:
        run = _open(
            config,
            experiment=experiment,
            name=name,
            seed=seed,
            deterministic=deterministic,
            seed_frameworks=seed_frameworks,
            store=store,
            distributed=distributed,
        )
    run._checkpoint_options = dict(checkpoints or {})
    run.distributed = distributed
    run.rank, run.world_size = (distributed.rank, distributed.world_size) if distributed else (0, 1)
    if distributed is not None:
        try:
            write_rank_record(
                run.dir, distributed, "running", metrics=metrics_path(".", run.rank).name
            )
        except BaseException:
            run.finish("failed", error="could not write the rank's record")
            raise
    _active = run
    return run


def _resume(
    config: Any,
    ref: str | os.PathLike[str],
    *,
    seed_frameworks: bool,
    store: StoreLike,
    resume_completed: bool = False,
) -> Run:
    from .recorder import resume_run

    store_obj = Store.coerce(store)
    run_dir = store_obj.resolve(os.fspath(ref))
    run_id, meta, _session = resume_run(run_dir, resume_completed=resume_completed)
    seed = int(meta["seed"])
    deterministic = bool(meta.get("deterministic"))
    if config is not None:
        data = {**to_container(config), "seed": seed}
        digest = config_hash(recordable_config(data))
        if digest != meta.get("config_hash"):
            meta["resumes"][-1]["config_hash"] = digest
            atomic_write_json(run_dir / "run.json", meta)
            warn(
                f"Resuming run {run_id} with a config that differs from the recorded one "
                f"(hash {str(meta.get('config_hash'))[:12]} -> {digest[:12]}); this is recorded.",
                RuntimeWarning,
            )
    report = seed_everything(seed, deterministic=deterministic) if seed_frameworks else None
    run = Run(
        run_id=run_id,
        run_dir=run_dir,
        experiment=str(meta.get("experiment")),
        seed=seed,
        config=config,
        owned=True,
        meta=meta,
        seed_report=report,
    )
    run.resumed = True
    _install_handlers()
    return run


def _join(
    context: ChildContext,
    config: Any,
    *,
    experiment: str | None,
    deterministic: bool,
    seed_frameworks: bool,
    distributed: DistributedContext | None = None,
) -> Run:
    run_dir = context.run_dir
    main = distributed is None or distributed.is_main
    try:
        meta = read_json(run_dir / "run.json")
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"${REPLICATOR_RUN_DIR.name} points to {run_dir}, which holds no readable run.json "
            f"({exc}). Unset it to start a run of your own."
        ) from exc
    recorded = context.seed if context.seed is not None else meta.get("seed")
    seed = check_seed(recorded, where=f"${REPLICATOR_SEED.name}")
    deterministic = deterministic or context.deterministic
    report = (
        seed_everything(seed, deterministic=deterministic, warn=False) if seed_frameworks else None
    )
    if config is not None:
        check_run_overrides(config, context)
        if main:  # one config per run: rank 0's (every rank loads the same)
            record_script_config(config, context)
    script = read_script_config(run_dir)
    if script is not None:
        # the config the script uses (recorded by load_config or just above) names checkpoints
        meta["config_hash"] = script.config_hash
    if experiment and not context.experiment_given and main:
        # The script names its experiment unless `replicator run --experiment` did. run.json
        # says so from now on, so that a run that crashes is filed under it too; the launcher
        # reads config/experiment.json when the run ends.
        write_experiment(run_dir, experiment)
        meta["experiment"] = experiment
        _file_under(run_dir, experiment)
    run = Run(
        run_id=str(meta["id"]),
        run_dir=run_dir,
        experiment=str(meta.get("experiment")),
        seed=seed,
        config=config,
        owned=False,
        meta=meta,
        seed_report=report,
        distributed=distributed,
    )
    run.resumed = context.resume
    if report is not None and main:
        atomic_write_json(run_dir / "seeding.json", report.as_dict(), fsync=False)
    return run


def _attach(
    run_dir: Path,
    config: Any,
    *,
    distributed: DistributedContext,
    seed_frameworks: bool,
) -> Run:
    """A rank above 0 of a bare ``torchrun`` joins the run rank 0 opened (or resumed)."""
    try:
        meta = read_json(run_dir / "run.json")
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"Rank {distributed.rank} cannot join run {run_dir.name}: its run.json is not "
            f"readable ({exc})."
        ) from exc
    seed = check_seed(meta.get("seed"), where=str(run_dir / "run.json"))
    deterministic = bool(meta.get("deterministic"))
    report = seed_loaded(seed, deterministic=deterministic) if seed_frameworks else None
    return Run(
        run_id=str(meta.get("id", run_dir.name)),
        run_dir=run_dir,
        experiment=str(meta.get("experiment")),
        seed=seed,
        config=config,
        owned=False,
        meta=meta,
        seed_report=report,
        distributed=distributed,
    )


def _file_under(run_dir: Path, experiment: str) -> None:
    """Write the experiment into the launcher's run.json (read fresh: the launcher owns it)."""
    try:
        current = read_json(run_dir / "run.json")
    except (OSError, ValueError):
        return
    if isinstance(current, dict) and current.get("experiment") != experiment:
        current["experiment"] = experiment
        atomic_write_json(run_dir / "run.json", current)


def _open(
    config: Any,
    *,
    experiment: str | None,
    name: str | None,
    seed: int | None,
    deterministic: bool,
    seed_frameworks: bool,
    store: StoreLike,
    distributed: DistributedContext | None = None,
) -> Run:
    store_obj = Store.coerce(store)
    data = to_container(config)
    if seed is None:
        seed = data.get("seed") if isinstance(data.get("seed"), int) else None
    seeding: dict[str, Any]
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
        seeding = {"source": "drawn (os.urandom)"}
    else:
        seed = check_seed(seed)
        seeding = {"source": "given"}
    data = {**data, "seed": seed}
    experiment = experiment or "default"
    cwd = os.getcwd()
    argv = [sys.executable, *sys.argv]
    run_id, run_dir, meta = new_run(
        store_obj,
        experiment=experiment,
        name=name,
        seed=seed,
        command=argv,
        cwd=cwd,
        launcher="python",
        deterministic=deterministic,
        seeding=seeding,
    )
    files, overrides = sources_of(config)
    meta["config"] = recordable_config(data)  # secrets redacted; the script keeps the real ones
    meta["config_hash"] = config_hash(meta["config"])
    meta["replicator_version"] = __version__  # readers tell which known defects apply
    if distributed is not None:
        # the workers' own command is in `command`; the launch that started them is here
        meta["distributed"] = {
            "world_size": distributed.world_size,
            "launch_command": launch_command(),
        }
    atomic_write_json(run_dir / "run.json", meta, fsync=False)
    if distributed is not None:
        publish_run(store_obj.root, distributed, run_id, run_dir)
    report = seed_loaded(seed, deterministic=deterministic) if seed_frameworks else None
    if report is not None:
        atomic_write_json(run_dir / "seeding.json", report.as_dict(), fsync=False)
    run = Run(
        run_id=run_id,
        run_dir=run_dir,
        experiment=experiment,
        seed=seed,
        config=config,
        owned=True,
        meta=meta,
        seed_report=report,
    )

    def capture() -> None:
        beside = start_capture(run_dir, run_id=run_id, cwd=cwd, store=store_obj)
        record_config(run_dir, data, files=files, overrides=overrides)
        code = capture_result(beside)
        if code is None:
            code = capture_all(run_dir, run_id=run_id, cwd=cwd, store=store_obj)
        meta["code"] = code
        try:
            datasets = fingerprint_config_data(data, store=store_obj, base_dir=cwd, where=None)
        except Exception as exc:  # recorded, never raised into the user's training
            meta["data_error"] = str(exc)
        else:
            if datasets:
                meta["data"] = datasets
        if not run._closed:
            atomic_write_json(run_dir / "run.json", meta)

    # Capture runs beside the script so that start() returns in milliseconds.
    run._capture_thread = threading.Thread(target=capture, name="replicator-capture", daemon=True)
    run._capture_thread.start()
    _install_handlers()
    return run
