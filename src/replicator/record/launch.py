"""``replicator run``: run a command as a child process and record it as a run (or a sweep).

The launcher records everything before the child starts (config, seed, code snapshot,
environment, hardware), gives the child its seed through ``REPLICATOR_SEED``, the config and
``PYTHONHASHSEED`` (set before the child's interpreter starts), tees the child's stdout and
stderr to the terminal and to the run, parses metrics from the output when a pattern is given,
forwards SIGINT/SIGTERM to the child's process group, and records the outcome: completed,
failed (non-zero exit), interrupted (a forwarded signal). If the launcher itself is killed, the
child gets SIGTERM (Linux parent-death signal) and the run reads as crashed (stale heartbeat).

What the child is told is one :class:`~replicator._protocol.ChildContext` (:func:`child_context`);
what it leaves for the launcher (``config/script.json``, ``config/experiment.json``) is read back
through the same module. The child process itself (tee, signals, heartbeat) is in
:mod:`replicator.record.child`.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .._protocol import (
    REPLICATOR_CONFIG,
    REPLICATOR_SWEEP_JOB,
    ChildContext,
)
from .._util.io import atomic_write_json, read_json
from ..capture.git import LeftOut
from ..config import apply_overrides, load_config, parse_override, to_container
from ..errors import ConfigError, UsageError
from ..mirror.session import check_mirroring, start_mirroring
from ..redact import REDACTED, redact_argv, redact_env
from ..store import Store, StoreLike, new_run_id
from .child import ChildProcess, Heartbeat, LiveSummary, forwarding_signals
from .command import expand_command
from .finish import finalize, join_marks, read_summary, seed_warning
from .lock import ResumeLock
from .metrics import MetricPattern, MetricsWriter
from .outputs import OutputWatcher
from .recorder import (
    capture_all,
    fingerprint_config_data,
    new_run,
    record_config,
    recordable_config,
    resume_run,
    set_status,
    which_python,
)
from .seeding import DETERMINISM_ENV, check_seed, draw_seeds
from .spec import LaunchResult, RunSpec, Target

OnStart = Callable[[str, Path, int], None]

__all__ = [
    "LaunchResult",
    "RunSpec",
    "child_context",
    "launch",
    "read_run_experiment",
]


def _resolve_config(spec: RunSpec) -> tuple[dict[str, Any], list[str]]:
    """Validate the config and overrides before anything starts (errors exit with code 2)."""
    files: list[str] = []
    if spec.config_path is None and not spec.overrides:
        return {}, files
    for text in spec.overrides:
        parse_override(text)  # syntax errors first, with the override's text
    if spec.config_path is not None:
        cfg = load_config(spec.config_path, overrides=list(spec.overrides))
        files = [str(Path(spec.config_path).resolve())]
        return to_container(cfg), files
    # Overrides without a file: the script's own load_config applies them; here they are
    # recorded as given (new keys allowed) until the script records its full config.
    data = apply_overrides(
        {}, [o if o.startswith(("+", "~")) else "++" + o for o in spec.overrides]
    )
    return data, files


def _draw(spec: RunSpec) -> tuple[list[int], dict[str, Any]]:
    if spec.seeds is not None and spec.seed is not None:
        raise UsageError(
            "Give either --seed N (one run) or --seeds N (N runs), not both. "
            "To draw the same N seeds again, use --seed-root with --seeds."
        )
    if spec.seeds is not None:
        if spec.seeds < 1:
            raise UsageError(f"--seeds must be at least 1, got {spec.seeds}.")
        root, seeds = draw_seeds(spec.seeds, root=spec.seed_root)
        return seeds, {"source": "sweep", "root": str(root), "n": spec.seeds}
    if spec.seed is not None:
        return [check_seed(spec.seed, where="--seed")], {"source": "given"}
    root, seeds = draw_seeds(1, root=spec.seed_root)
    return seeds, {"source": "drawn", "root": str(root)}


@dataclass(frozen=True)
class _Plan:
    """What every run of one ``launch`` shares: config, seeds, experiment, metrics, outputs."""

    config: dict[str, Any]
    files: list[str]
    seeds: list[int]
    seeding: dict[str, Any]
    experiment: str
    pattern: MetricPattern | None
    outputs: list[str]


@dataclass(frozen=True)
class _Streams:
    stdout: IO[bytes]
    stderr: IO[bytes]
    on_start: OnStart | None
    on_warning: Callable[[str], None] | None = None


def launch(
    spec: RunSpec,
    *,
    store: StoreLike = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    on_start: OnStart | None = None,
    on_end: Callable[[LaunchResult], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> list[LaunchResult]:
    """Run ``spec.command`` once per seed, recording each run; stops a sweep when interrupted.

    ``on_warning`` gets one line per thing the user should know that does not stop the run
    (a file left out of the code snapshot, and why).
    """
    if not spec.command and spec.resume is None:  # --resume re-runs the recorded command
        raise UsageError(
            "No command to run. Put it after '--', e.g. replicator run -- python train.py"
        )
    store = Store.coerce(store)
    check_mirroring(spec.mirror, settings=store.settings.mirror)  # before anything starts
    streams = _Streams(
        stdout or sys.stdout.buffer, stderr or sys.stderr.buffer, on_start, on_warning
    )
    if spec.cwd is not None and spec.config_path and not os.path.isabs(spec.config_path):
        spec = dataclasses.replace(spec, config_path=os.path.join(spec.cwd, spec.config_path))
    if spec.resume is not None:
        _check_resume_command(spec, store)
        # One resume of a run at a time, until its record is final (see record/lock.py).
        with ResumeLock.acquire(
            store.resolve(spec.resume),
            stale_after=store.heartbeat_stale_s,
            on_warning=streams.on_warning,
        ):
            resumed = _resume(spec, store=store, streams=streams)
        if on_end is not None:
            on_end(resumed)
        return [resumed]
    plan = _plan(spec)
    if not spec.literal_command:  # an unknown placeholder stops here, before anything exists
        expand_command(spec.command, _dummy_values(), {**plan.config, "seed": 0})
    sweep = _Sweep.open(spec, plan, store) if spec.seeds is not None else None
    results = []
    for index, seed in enumerate(plan.seeds):
        seeding = sweep.seeding(plan, index) if sweep is not None else plan.seeding
        result = _launch_one(spec, plan, store=store, seed=seed, seeding=seeding, streams=streams)
        results.append(result)
        if sweep is not None and index == 0:
            sweep.refile(read_run_experiment(result.dir))
        if on_end is not None:
            on_end(result)
        if result.status == "interrupted":
            break
    return results


def _dummy_values() -> dict[str, str]:
    return {"seed": "0", "run_dir": "", "run_id": ""}


def _check_resume_command(spec: RunSpec, store: Store) -> None:
    """The placeholders of the command a resume will run, checked before the run reopens."""
    try:
        meta = read_json(store.resolve(str(spec.resume)) / "run.json")
    except (OSError, ValueError):
        return  # _resume says what is wrong with the run
    if not isinstance(meta, dict):
        return
    command, literal = _resumed_template(spec, meta)
    if command and not literal:
        config = meta.get("config")
        expand_command(command, _dummy_values(), config if isinstance(config, dict) else {})


def _resumed_template(spec: RunSpec, meta: Mapping[str, Any]) -> tuple[tuple[str, ...], bool]:
    """The command a resume runs (given, else recorded) and whether it is literal: a run
    recorded before placeholders existed (no ``command_run``) ran its command as written."""
    recorded = tuple(str(p) for p in meta.get("command") or ())
    command = tuple(spec.command) or recorded
    return command, command == recorded and "command_run" not in meta


def _plan(spec: RunSpec) -> _Plan:
    config, files = _resolve_config(spec)
    seeds, seeding = _draw(spec)
    sweep_job = REPLICATOR_SWEEP_JOB.get()
    if sweep_job is not None:  # a job of `replicator sweep`: its status reads this back
        seeding = {**seeding, "sweep": sweep_job[0], "index": sweep_job[1]}
    experiment = spec.experiment or (Path(spec.config_path).stem if spec.config_path else "default")
    pattern_text = spec.metric_pattern or config.get("metric_pattern")
    pattern = (
        MetricPattern.compile(str(pattern_text), where="metric_pattern") if pattern_text else None
    )
    outputs = list(spec.outputs) or _config_outputs(config, spec.config_path)
    return _Plan(config, files, seeds, seeding, experiment, pattern, outputs)


class _Sweep:
    """The seeds of ``--seeds N``, filed with the experiment's sweeps."""

    def __init__(self, store: Store, record: dict[str, Any], path: Path) -> None:
        self.store = store
        self.record = record
        self.path = path

    @classmethod
    def open(cls, spec: RunSpec, plan: _Plan, store: Store) -> _Sweep:
        record = {
            "id": new_run_id(),
            "experiment": plan.experiment,
            "created": time.time(),
            "root": plan.seeding["root"],
            "seeds": plan.seeds,
            "command": redact_argv(list(spec.command)),
        }
        return cls(store, record, store.write_sweep(plan.experiment, record))

    def seeding(self, plan: _Plan, index: int) -> dict[str, Any]:
        return {**plan.seeding, "index": index, "sweep": self.record["id"]}

    def refile(self, experiment: str | None) -> None:
        """The script may have named the experiment (start(experiment=...)): file the sweep's
        seeds with its runs."""
        if experiment and experiment != self.record["experiment"]:
            self.record["experiment"] = experiment
            self.store.write_sweep(experiment, self.record)
            self.path.unlink(missing_ok=True)


def read_run_experiment(run_dir: Path) -> str | None:
    """The experiment a run is filed under (its ``run.json``), or None when unreadable."""
    try:
        return str(read_json(run_dir / "run.json")["experiment"])
    except (OSError, ValueError, KeyError):
        return None


def _config_outputs(config: Mapping[str, Any], config_path: str | None) -> list[str]:
    value = config.get("outputs")
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(
        f"'outputs' in {config_path} must be a path or a list of paths, got {value!r}."
    )


def _launch_one(
    spec: RunSpec,
    plan: _Plan,
    *,
    store: Store,
    seed: int,
    seeding: dict[str, Any],
    streams: _Streams,
) -> LaunchResult:
    cwd = spec.cwd or os.getcwd()
    run_config = {**plan.config, "seed": seed}
    # Datasets first: a missing path stops here, before a run directory exists.
    datasets = fingerprint_config_data(
        plan.config, store=store, base_dir=cwd, where=spec.config_path
    )
    run_id, run_dir, meta = new_run(
        store,
        experiment=plan.experiment,
        name=spec.name,
        seed=seed,
        command=spec.command,
        cwd=cwd,
        launcher="cli",
        deterministic=spec.deterministic,
        seeding=seeding,
        extra={
            # the child gets the real values; the record, redacted ones (see _resume)
            "overrides": redact_argv(list(spec.overrides)),
            "metric_pattern": plan.pattern.regex.pattern if plan.pattern else None,
            **spec.record,
        },
    )
    meta["config"] = recordable_config(run_config)
    meta["config_hash"] = record_config(
        run_dir, run_config, files=plan.files, overrides=spec.overrides
    )
    if datasets:
        meta["data"] = datasets
    target = Target(
        run_id, run_dir, meta, seed, cwd, capture_dir=run_dir, resumed=False, config=run_config
    )
    return _execute(
        spec, target, store=store, pattern=plan.pattern, outputs=plan.outputs, streams=streams
    )


def _resume(spec: RunSpec, *, store: Store, streams: _Streams) -> LaunchResult:
    """Continue a recorded run in its own record: same seed, config and (default) command."""
    assert spec.resume is not None
    if spec.config_path or spec.seed is not None or spec.seeds is not None:
        raise UsageError(
            "--resume continues a run with its recorded config and seed; drop -c, --set, "
            "--seed and --seeds (start a new run to change them)."
        )
    run_dir = store.resolve(spec.resume)
    overrides = _resumed_overrides(spec, run_dir)
    run_id, meta, session = resume_run(
        run_dir, resume_completed=spec.resume_completed, stale_after=store.heartbeat_stale_s
    )
    command = tuple(spec.command) or tuple(meta.get("command") or ())
    if not command or REDACTED in command:
        raise UsageError(
            f"Run {run_id}'s recorded command held a secret and was redacted; give the command "
            "again after '--': replicator run --resume RUN -- python train.py ..."
        )
    spec = dataclasses.replace(
        spec,
        command=command,
        overrides=overrides,
        deterministic=bool(meta.get("deterministic")),
        config_path=_recorded_config_path(meta),
    )
    pattern_text = meta.get("metric_pattern")
    pattern = MetricPattern.compile(pattern_text) if pattern_text else None
    capture_dir = run_dir / "resumes" / f"{run_id}.resume-{session}"
    capture_dir.mkdir(parents=True, exist_ok=True)
    cwd = str(meta.get("cwd") or os.getcwd())
    target = Target(
        run_id,
        run_dir,
        meta,
        int(meta["seed"]),
        cwd,
        capture_dir=capture_dir,
        resumed=True,
        summary_before=read_summary(run_dir),
    )
    return _execute(spec, target, store=store, pattern=pattern, outputs=[], streams=streams)


def _recorded_config_path(meta: Mapping[str, Any]) -> str | None:
    """The ``-c FILE`` the run's first session gave its script (as ``REPLICATOR_CONFIG``), so
    that a resumed script loads the file the run was recorded with, not its own default."""
    child_env = meta.get("child_env")
    path = child_env.get(REPLICATOR_CONFIG.name) if isinstance(child_env, Mapping) else None
    return str(path) if path and REDACTED not in str(path) else None


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _resumed_overrides(spec: RunSpec, run_dir: Path) -> tuple[str, ...]:
    """The recorded ``--set`` overrides, with the secrets redacted from the record given again.

    A secret given with ``--set`` is recorded redacted: resuming needs it again, and ``--set``
    with ``--resume`` may give exactly those keys (nothing else of the config may change).
    """
    try:
        recorded = [str(o) for o in read_json(run_dir / "run.json").get("overrides") or ()]
    except (OSError, ValueError, AttributeError):
        recorded = []
    redacted = {_override_key(o) for o in recorded if REDACTED in o}
    given = {_override_key(o): o for o in spec.overrides}
    if set(given) - redacted:
        raise UsageError(
            "--resume continues a run with its recorded config and seed; drop -c, --set, "
            "--seed and --seeds (start a new run to change them). With --resume, --set may only "
            "give again a secret the record redacted."
        )
    merged = [
        o.split("=", 1)[0] + "=" + given[_override_key(o)].split("=", 1)[-1]
        if REDACTED in o and _override_key(o) in given
        else o
        for o in recorded
    ]
    missing = [o.split("=", 1)[0] for o in merged if REDACTED in o]
    if missing:
        sets = " ".join(f"--set {name}=..." for name in missing)
        raise UsageError(
            f"The run's config override(s) {', '.join(missing)} held a secret and were recorded "
            f"redacted; give them again: replicator run --resume {spec.resume} {sets}"
        )
    return tuple(merged)


def child_context(spec: RunSpec, target: Target) -> ChildContext:
    """What the launcher tells the child (see :mod:`replicator._protocol`)."""
    return ChildContext(
        run_dir=target.run_dir,
        run_id=target.run_id,
        seed=target.seed,
        config_path=Path(spec.config_path).resolve() if spec.config_path else None,
        overrides=tuple(spec.overrides),
        experiment_given=bool(spec.experiment),
        resume=target.resumed,
        deterministic=spec.deterministic,
    )


def _execute(
    spec: RunSpec,
    target: Target,
    *,
    store: Store,
    pattern: MetricPattern | None,
    outputs: list[str],
    streams: _Streams,
) -> LaunchResult:
    command, seed_given = _record_command(spec, target)
    spec = dataclasses.replace(spec, command=tuple(command))
    child_env = {**os.environ, **spec.env, **child_context(spec, target).to_environ()}
    _capture(spec, target, store=store, child_env=child_env, on_warning=streams.on_warning)
    watcher = OutputWatcher(
        target.cwd,
        declared=outputs,
        exclude=[store.root, Path(target.cwd) / ".git"],
        ignore=_own_output_files(streams),
    )
    watcher.before()
    writer, live = _metrics_writer(target, pattern)
    heartbeat = Heartbeat(target.run_dir)
    mirrors = start_mirroring(
        target.run_dir,
        spec.mirror,
        settings=store.settings.mirror,
        on_warning=streams.on_warning,
        resumed=target.resumed,
        accept_requests=True,
    )
    joined_before = join_marks(target.run_dir)
    if streams.on_start is not None:
        streams.on_start(target.run_id, target.run_dir, target.seed)
    try:
        code, interrupted, output_error = _run_child(
            spec, target, child_env, pattern, writer, streams
        )
    finally:
        if writer:
            writer.close()
            if live is not None:
                live.sync(writer, force=True)
        heartbeat.stop()
    warning = None
    if not seed_given and join_marks(target.run_dir) == joined_before:
        warning = seed_warning(target)
        (target.meta["resumes"][-1] if target.resumed else target.meta)["seed_warning"] = warning
    result = finalize(
        target,
        code,
        interrupted,
        writer,
        watcher,
        output_error=output_error,
        tensorboard_dir=spec.tensorboard_dir,
        mirrors=mirrors,
    )
    if warning and streams.on_warning is not None:
        streams.on_warning(warning)
    return result


def _record_command(spec: RunSpec, target: Target) -> tuple[list[str], bool]:
    """The command the child runs (placeholders substituted) and whether it got the seed.

    run.json keeps ``command`` as given (what a resume or a reproduction runs again) and
    ``command_run`` as run, both redacted; a resumed session records them in its ``resumes[]``
    entry.
    """
    values = {"seed": str(target.seed), "run_dir": str(target.run_dir), "run_id": target.run_id}
    if target.resumed:
        template, literal = _resumed_template(spec, target.meta)
        recorded_config = target.meta.get("config") or {}
        config: Mapping[str, Any] = recorded_config
    else:
        template, literal = spec.command, spec.literal_command
        config = target.config or {}
        recorded_config = recordable_config(config)
    used: set[str] = set()
    if literal:
        command = shown = list(template)
    else:
        command, used = expand_command(template, values, config)
        shown, _ = expand_command(template, values, recorded_config, recording=True)
    record = {"command_run": redact_argv(shown)}
    if target.resumed:
        target.meta["resumes"][-1].update(command=redact_argv(list(template)), **record)
    else:
        target.meta.update(record)
    return command, bool(used & {"seed", "config.seed"})


def _metrics_writer(
    target: Target, pattern: MetricPattern | None
) -> tuple[MetricsWriter | None, LiveSummary | None]:
    """The writer of metrics parsed from the output; the summary follows them every second."""
    if pattern is None:
        return None, None
    keys = [name for name in pattern.regex.groupindex if name != "step"]
    live = LiveSummary(target.run_dir, keys, previous=target.summary_before or None)
    writer: MetricsWriter | None = None

    def tick() -> None:
        if writer is not None:
            live.sync(writer)

    writer = MetricsWriter(target.run_dir / "metrics.jsonl", source="output", on_tick=tick)
    return writer, live


def _own_output_files(streams: _Streams) -> list[tuple[int, int, str]]:
    """(device, inode, name) of the regular files the launcher's stdout and stderr go to (a
    shell redirect such as ``> run.log``): the recorder's own output, never a run's output."""
    found: list[tuple[int, int, str]] = []
    candidates: list[tuple[Any, str]] = [(1, "stdout"), (2, "stderr")]
    candidates += [(streams.stdout, "stdout"), (streams.stderr, "stderr")]
    for where, name in candidates:
        try:
            fd = where if isinstance(where, int) else where.fileno()
            st = os.fstat(fd)
        except (OSError, ValueError, AttributeError):
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((st.st_dev, st.st_ino, name))
    return found


def _capture(
    spec: RunSpec,
    target: Target,
    *,
    store: Store,
    child_env: Mapping[str, str],
    on_warning: Callable[[str], None] | None = None,
) -> None:
    """Snapshot code, environment and hardware before the child starts; write run.json."""
    meta = target.meta
    code_summary = capture_all(
        target.capture_dir,
        run_id=target.capture_dir.name if target.resumed else target.run_id,
        cwd=target.cwd,
        store=store,
        interpreter=which_python(spec.command, dict(child_env), cwd=target.cwd),
        env=dict(child_env),
        max_file_size=spec.snapshot_limit(store.settings.snapshot_max_size),
    )
    if on_warning is not None:
        for item in code_summary.get("left_out") or ():
            on_warning(f"left out of the code snapshot: {LeftOut(**item).message}")
    if target.resumed:
        meta["resumes"][-1]["code"] = code_summary
    else:
        meta["code"] = code_summary
    meta["child_env"] = redact_env(
        {
            k: v
            for k, v in child_env.items()
            if k.startswith(("REPLICATOR_", "PYTHON")) or k in DETERMINISM_ENV
        }
    )
    atomic_write_json(target.run_dir / "run.json", meta)


def _run_child(
    spec: RunSpec,
    target: Target,
    child_env: dict[str, str],
    pattern: MetricPattern | None,
    writer: MetricsWriter | None,
    streams: _Streams,
) -> tuple[int, str | None, str | None]:
    """Start the child with signals forwarded and wait: its exit code, the signal if any, and
    why its output could not all be recorded (a full disk), if so."""
    with forwarding_signals() as forwarding:
        try:
            child = ChildProcess(
                spec.command,
                child_env,
                target.run_dir,
                pattern=pattern,
                writer=writer,
                stdout=streams.stdout,
                stderr=streams.stderr,
                cwd=target.cwd,
                resumed=target.resumed,
            )
        except OSError as exc:
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            message = f"cannot start {spec.command[0]!r}: {exc.strerror or exc}"
            set_status(target.run_dir, target.meta, "failed", exit_code=code, error=message)
            raise UsageError(
                f"Run {target.run_id}: {message}. Check the command after '--'."
            ) from exc
        forwarding.attach(child)
        return child.wait(), child.interrupted, child.output_error
