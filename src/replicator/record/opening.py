"""``replicator.start()``: open a run, join the one ``replicator run`` opened, resume one, or
join a distributed launch's run; each way ends in a :class:`~replicator.record.run.Run`.

Under ``replicator run`` the launcher owns the record (status, capture, output) and ``start()``
joins it; under plain ``python`` it opens a run of its own and records the same things, the
capture running in a child interpreter beside the script. Under ``torchrun`` (``WORLD_SIZE`` > 1)
rank 0 opens the launch's run and the other ranks attach to it (docs/distributed.md).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._protocol import (
    REPLICATOR_RUN_DIR,
    REPLICATOR_SEED,
    ChildContext,
    read_script_config,
    write_experiment,
)
from .._util.io import atomic_write_json, read_json
from .._util.warnings import warn
from ..config import config_hash, to_container
from ..errors import StoreError
from ..mirror.base import Sink
from ..mirror.plan import parse_mirror, write_request
from ..mirror.session import check_mirroring, start_mirroring
from ..store import Store, StoreLike
from ..store.metrics import metrics_path
from .capture_child import capture_result, start_capture
from .distributed import (
    DistributedContext,
    launch_command,
    publish_run,
    wait_for_run,
    write_rank_record,
)
from .recorder import (
    capture_all,
    fingerprint_config_data,
    new_run,
    record_config,
    recordable_config,
)
from .run import Run, activate, check_none_open, install_signal_handlers
from .script import check_run_overrides, joined_context, record_script_config, sources_of
from .seeding import check_seed, seed_everything, seed_loaded

__all__ = ["start"]


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
    mirror: str | Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
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

    ``mirror`` names the sinks the run is mirrored to (``"tensorboard,mlflow"``, a list, or
    ``{"mlflow": {"tracking_uri": ...}}`` with options); default: the ``mirror:`` key of
    ``replicator.yaml``. An unknown sink or a missing package raises here, before the run
    starts. Under ``replicator run`` the recorder feeds them; see docs/mirrors.md.
    """
    check_none_open()
    context = joined_context()
    distributed = DistributedContext.from_environ()
    main = distributed is None or distributed.is_main
    request = parse_mirror(mirror, where="start(mirror=...)")
    sinks: list[Sink] = []
    if main and (context is None or request):
        settings = Store.coerce(store).settings.mirror if context is None else None
        sinks = check_mirroring(request, settings=settings, where="start(mirror=...)")
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
        install_signal_handlers()
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
    if sinks or (main and context is None and resume is not None):
        _mirror(run, context, request, sinks)
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
    activate(run)
    return run


def _mirror(
    run: Run,
    context: ChildContext | None,
    request: Mapping[str, Mapping[str, Any]] | None,
    sinks: list[Sink],
) -> None:
    """Mirror ``run`` once: a joined script asks the recorder (``replicator run`` feeds the
    sinks); a run this process owns feeds them from here, and closes them when it finishes."""
    if context is not None:
        write_request(run.dir, {sink.name: dict(sink.options) for sink in sinks})
        return
    capture = run._capture_thread
    worker = start_mirroring(
        run.dir,
        request,
        settings=None,
        sinks=sinks,
        resumed=run.resumed,
        ready=capture.join if capture is not None else None,
    )
    if worker is None:
        return
    finish = run.finish

    def finish_and_mirror(status: str = "completed", **fields: Any) -> None:
        closed = run._closed
        finish(status, **fields)
        if not closed:
            worker.close(status)

    run.finish = finish_and_mirror  # type: ignore[method-assign]


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
    run_id, meta, _session = resume_run(
        run_dir, resume_completed=resume_completed, stale_after=store_obj.heartbeat_stale_s
    )
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
    install_signal_handlers()
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


def _seed_of(data: Mapping[str, Any], seed: int | None) -> tuple[int, dict[str, Any]]:
    """The run's seed (given, else the config's ``seed``, else drawn) and where it came from."""
    if seed is None:
        seed = data.get("seed") if isinstance(data.get("seed"), int) else None
    if seed is None:
        return int.from_bytes(os.urandom(4), "little"), {"source": "drawn (os.urandom)"}
    return check_seed(seed), {"source": "given"}


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
    seed, seeding = _seed_of(data, seed)
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
    install_signal_handlers()
    return run
