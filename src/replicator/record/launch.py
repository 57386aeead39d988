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
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .._protocol import ChildContext, read_experiment, read_script_config, write_script_config
from .._util.io import atomic_write_json, read_json
from ..capture.git import SNAPSHOT_MAX_FILE_SIZE, LeftOut
from ..config import apply_overrides, load_config, parse_override, to_container
from ..errors import ConfigError, UsageError
from ..redact import REDACTED, redact_argv, redact_env
from ..store import Store, StoreLike, new_run_id
from .child import ChildProcess, Heartbeat, forwarding_signals
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

OnStart = Callable[[str, Path, int], None]

__all__ = ["LaunchResult", "RunSpec", "child_context", "launch", "read_run_experiment"]


@dataclass(frozen=True)
class RunSpec:
    """What to run and how to record it; built by the CLI from its options."""

    command: tuple[str, ...]
    config_path: str | None = None
    overrides: tuple[str, ...] = ()
    seed: int | None = None
    seeds: int | None = None
    seed_root: int | None = None
    experiment: str | None = None
    name: str | None = None
    outputs: tuple[str, ...] = ()
    metric_pattern: str | None = None
    deterministic: bool = False
    resume: str | None = None
    resume_completed: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    # where the command runs (default: the current directory); relative paths start there
    cwd: str | None = None
    # extra fields for the new run's run.json (e.g. ``reproduction_of``)
    record: Mapping[str, Any] = field(default_factory=dict)
    # untracked files larger than this (bytes) stay out of the code snapshot; None: no limit
    snapshot_max_size: int | None = SNAPSHOT_MAX_FILE_SIZE


@dataclass(frozen=True)
class LaunchResult:
    """The outcome of one recorded run."""

    run_id: str
    dir: Path
    status: str
    exit_code: int | None
    seed: int


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
    streams = _Streams(
        stdout or sys.stdout.buffer, stderr or sys.stderr.buffer, on_start, on_warning
    )
    if spec.cwd is not None and spec.config_path and not os.path.isabs(spec.config_path):
        spec = dataclasses.replace(spec, config_path=os.path.join(spec.cwd, spec.config_path))
    if spec.resume is not None:
        resumed = _resume(spec, store=store, streams=streams)
        if on_end is not None:
            on_end(resumed)
        return [resumed]
    plan = _plan(spec)
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


def _plan(spec: RunSpec) -> _Plan:
    config, files = _resolve_config(spec)
    seeds, seeding = _draw(spec)
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
    target = _Target(run_id, run_dir, meta, seed, cwd, capture_dir=run_dir, resumed=False)
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
    run_id, meta, session = resume_run(run_dir, resume_completed=spec.resume_completed)
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
    )
    pattern_text = meta.get("metric_pattern")
    pattern = MetricPattern.compile(pattern_text) if pattern_text else None
    capture_dir = run_dir / "resumes" / f"{run_id}.resume-{session}"
    capture_dir.mkdir(parents=True, exist_ok=True)
    cwd = str(meta.get("cwd") or os.getcwd())
    target = _Target(
        run_id, run_dir, meta, int(meta["seed"]), cwd, capture_dir=capture_dir, resumed=True
    )
    return _execute(spec, target, store=store, pattern=pattern, outputs=[], streams=streams)


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


@dataclass(frozen=True)
class _Target:
    """The run a child records into (a new one, or a resumed one captured in ``capture_dir``)."""

    run_id: str
    run_dir: Path
    meta: dict[str, Any]
    seed: int
    cwd: str
    capture_dir: Path
    resumed: bool


def child_context(spec: RunSpec, target: _Target) -> ChildContext:
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
    target: _Target,
    *,
    store: Store,
    pattern: MetricPattern | None,
    outputs: list[str],
    streams: _Streams,
) -> LaunchResult:
    child_env = {**os.environ, **spec.env, **child_context(spec, target).to_environ()}
    _capture(spec, target, store=store, child_env=child_env, on_warning=streams.on_warning)
    watcher = OutputWatcher(
        target.cwd, declared=outputs, exclude=[store.root, Path(target.cwd) / ".git"]
    )
    watcher.before()
    writer = MetricsWriter(target.run_dir / "metrics.jsonl", source="output") if pattern else None
    heartbeat = Heartbeat(target.run_dir)
    if streams.on_start is not None:
        streams.on_start(target.run_id, target.run_dir, target.seed)
    try:
        code, interrupted = _run_child(spec, target, child_env, pattern, writer, streams)
    finally:
        if writer:
            writer.close()
        heartbeat.stop()
    return _finalize(target, code, interrupted, writer, watcher)


def _capture(
    spec: RunSpec,
    target: _Target,
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
        executable=which_python(spec.command, dict(child_env)),
        env=dict(child_env),
        max_file_size=spec.snapshot_max_size,
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
    target: _Target,
    child_env: dict[str, str],
    pattern: MetricPattern | None,
    writer: MetricsWriter | None,
    streams: _Streams,
) -> tuple[int, str | None]:
    """Start the child with signals forwarded and wait: its exit code and the signal, if any."""
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
            )
        except OSError as exc:
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            message = f"cannot start {spec.command[0]!r}: {exc.strerror or exc}"
            set_status(target.run_dir, target.meta, "failed", exit_code=code, error=message)
            raise UsageError(
                f"Run {target.run_id}: {message}. Check the command after '--'."
            ) from exc
        forwarding.attach(child)
        return child.wait(), child.interrupted


def _outcome(code: int, interrupted: str | None) -> tuple[str, dict[str, Any]]:
    fields: dict[str, Any] = {"exit_code": code}
    if code < 0:
        fields["signal"] = signal.Signals(-code).name
    if interrupted and (code != 0):
        fields.setdefault("signal", interrupted)
        return "interrupted", fields
    return ("completed" if code == 0 else "failed"), fields


def _adopt_script_records(run_dir: Path, meta: dict[str, Any]) -> None:
    """The script's own record of its config and experiment (inside the child) wins."""
    experiment = read_experiment(run_dir)
    if experiment is not None:
        meta["experiment"] = experiment
    script = read_script_config(run_dir)
    if script is not None:
        clean = recordable_config(script.config)
        if clean != script.config:
            # The script wrote its config as it had it; the record keeps it redacted.
            write_script_config(run_dir, dataclasses.replace(script, config=clean))
        meta["config"] = clean
        meta["config_hash"] = script.config_hash
        if script.data:
            meta["data"] = script.data
        if script.data_error:
            meta["data_error"] = script.data_error


def _write_summary(run_dir: Path, writer: MetricsWriter | None) -> None:
    """Metrics parsed from the output, under what the script set itself."""
    summary_path = run_dir / "summary.json"
    summary: dict[str, Any] = dict(writer.last) if writer else {}
    if summary_path.exists():
        try:
            summary.update(read_json(summary_path))
        except (OSError, ValueError):
            pass
    if summary:
        atomic_write_json(summary_path, summary)


def _finalize(
    target: _Target,
    code: int,
    interrupted: str | None,
    writer: MetricsWriter | None,
    watcher: OutputWatcher,
) -> LaunchResult:
    run_dir, meta = target.run_dir, target.meta
    status, fields = _outcome(code, interrupted)
    _adopt_script_records(run_dir, meta)
    try:
        atomic_write_json(run_dir / "outputs.json", watcher.after(), fsync=False)
    except OSError as exc:
        fields["outputs_error"] = str(exc)
    _write_summary(run_dir, writer)
    if writer is not None and writer.error:  # parsed metrics a write error cost (disk full)
        fields["metrics_error"] = writer.error
    set_status(run_dir, meta, status, **fields)
    return LaunchResult(
        run_id=target.run_id, dir=run_dir, status=status, exit_code=code, seed=target.seed
    )
