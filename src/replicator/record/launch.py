"""``replicator run``: run a command as a child process and record it as a run (or a sweep).

The launcher records everything before the child starts (config, seed, code snapshot,
environment, hardware), gives the child its seed through ``REPLICATOR_SEED``, the config and
``PYTHONHASHSEED`` (set before the child's interpreter starts), tees the child's stdout and
stderr to the terminal and to the run, parses metrics from the output when a pattern is given,
forwards SIGINT/SIGTERM to the child's process group, and records the outcome: completed,
failed (non-zero exit), interrupted (a forwarded signal). If the launcher itself is killed, the
child gets SIGTERM (Linux parent-death signal) and the run reads as crashed (stale heartbeat).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .._util.io import atomic_write_json, read_json
from ..config import (
    ENV_CONFIG,
    ENV_OVERRIDES,
    ENV_RUN_DIR,
    ENV_SEED,
    apply_overrides,
    load_config,
    parse_override,
    to_container,
)
from ..errors import ConfigError, UsageError
from ..redact import REDACTED, redact_argv, redact_text, secret_values
from ..store.store import HEARTBEAT_INTERVAL_S, Store
from .metrics import MetricPattern, MetricsWriter
from .outputs import OutputWatcher
from .recorder import (
    capture_all,
    fingerprint_config_data,
    new_run,
    record_config,
    resume_run,
    set_status,
    touch_heartbeat,
    which_python,
)
from .seeding import DETERMINISM_ENV, check_seed, draw_seeds

__all__ = ["LaunchResult", "RunSpec", "launch"]


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
        cfg = load_config(
            spec.config_path, overrides=list(spec.overrides), apply_run_overrides=False
        )
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


def launch(
    spec: RunSpec,
    *,
    store: Store | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    on_start: Callable[[str, Path, int], None] | None = None,
    on_end: Callable[[LaunchResult], None] | None = None,
) -> list[LaunchResult]:
    """Run ``spec.command`` once per seed, recording each run; stops a sweep when interrupted."""
    if not spec.command and spec.resume is None:  # --resume re-runs the recorded command
        raise UsageError(
            "No command to run. Put it after '--', e.g. replicator run -- python train.py"
        )
    store = store or Store.open()
    if spec.cwd is not None and spec.config_path and not os.path.isabs(spec.config_path):
        spec = dataclasses.replace(spec, config_path=os.path.join(spec.cwd, spec.config_path))
    if spec.resume is not None:
        resumed = _resume(
            spec,
            store=store,
            stdout=stdout or sys.stdout.buffer,
            stderr=stderr or sys.stderr.buffer,
            on_start=on_start,
        )
        if on_end is not None:
            on_end(resumed)
        return [resumed]
    config, files = _resolve_config(spec)
    seeds, seeding = _draw(spec)
    experiment = spec.experiment or (Path(spec.config_path).stem if spec.config_path else "default")
    pattern_text = spec.metric_pattern or config.get("metric_pattern")
    pattern = (
        MetricPattern.compile(str(pattern_text), where="metric_pattern") if pattern_text else None
    )
    outputs = list(spec.outputs) or _config_outputs(config, spec.config_path)
    sweep_id = None
    sweep: dict[str, Any] = {}
    sweep_file = Path()
    if spec.seeds is not None:
        from ..store.store import new_run_id

        sweep_id = new_run_id()
        sweep = {
            "id": sweep_id,
            "experiment": experiment,
            "created": time.time(),
            "root": seeding["root"],
            "seeds": seeds,
            "command": redact_argv(list(spec.command)),
        }
        sweep_file = store.write_sweep(experiment, sweep)
    results = []
    for index, seed in enumerate(seeds):
        run_seeding = {**seeding, "index": index, "sweep": sweep_id} if sweep_id else seeding
        result = _launch_one(
            spec,
            store=store,
            config=config,
            files=files,
            seed=seed,
            seeding=run_seeding,
            experiment=experiment,
            pattern=pattern,
            outputs=outputs,
            stdout=stdout or sys.stdout.buffer,
            stderr=stderr or sys.stderr.buffer,
            on_start=on_start,
        )
        results.append(result)
        if sweep_id is not None and index == 0:
            # The script may have named the experiment (start(experiment=...)): file the
            # sweep's seeds with its runs.
            named = read_run_experiment(result.dir)
            if named and named != experiment:
                sweep["experiment"] = named
                store.write_sweep(named, sweep)
                sweep_file.unlink(missing_ok=True)
        if on_end is not None:
            on_end(result)
        if result.status == "interrupted":
            break
    return results


def read_run_experiment(run_dir: Path) -> str | None:
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


class _Child:
    """The running child process with its tee threads and signal forwarding."""

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str],
        run_dir: Path,
        pattern: MetricPattern | None,
        writer: MetricsWriter | None,
        stdout: IO[bytes],
        stderr: IO[bytes],
        cwd: str,
    ) -> None:
        self.run_dir = run_dir
        # Longest first, so that a value containing another is removed whole.
        self.secrets = sorted(secret_values(env, command), key=len, reverse=True)
        self.pattern = pattern
        self.writer = writer
        self.interrupted: str | None = None
        self.signals_received = 0
        self.proc = subprocess.Popen(
            list(command),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=None,
            cwd=cwd,
            process_group=0,
            preexec_fn=_die_with_parent,
        )
        self.threads = [
            threading.Thread(
                target=self._tee,
                args=(self.proc.stdout, stdout, run_dir / "stdout.log"),
                daemon=True,
            ),
            threading.Thread(
                target=self._tee,
                args=(self.proc.stderr, stderr, run_dir / "stderr.log"),
                daemon=True,
            ),
        ]
        for t in self.threads:
            t.start()

    def _tee(self, pipe: IO[bytes] | None, terminal: IO[bytes], log_path: Path) -> None:
        assert pipe is not None
        fd = pipe.fileno()
        pending = b""
        with open(log_path, "ab", buffering=0) as log:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except InterruptedError:
                    continue
                if not chunk:
                    break
                try:
                    terminal.write(chunk)
                    terminal.flush()
                except (OSError, ValueError):
                    pass  # the terminal went away; keep recording
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if lines:
                    log.write(self._lines(lines))
            if pending:
                log.write(self._lines([pending]).rstrip(b"\n"))

    def _lines(self, lines: list[bytes]) -> bytes:
        out = []
        for raw in lines:
            text = raw.decode("utf-8", "replace")
            if self.pattern is not None and self.writer is not None:
                # tqdm-style carriage returns: the last segment is what the line shows.
                for segment in text.split("\r"):
                    parsed = self.pattern.parse(segment)
                    if parsed is not None:
                        step, values = parsed
                        self.writer.log(values, step)
            for secret in self.secrets:
                if secret in text:
                    text = text.replace(secret, REDACTED)
            out.append(redact_text(text))
        return ("\n".join(out) + "\n").encode("utf-8")

    def forward(self, signum: int) -> None:
        """Forward a signal to the child's process group; escalate on repeats."""
        self.signals_received += 1
        self.interrupted = signal.Signals(signum).name
        sig = signum
        if self.signals_received == 2:
            sig = signal.SIGTERM
        elif self.signals_received >= 3:
            sig = signal.SIGKILL
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        while True:
            try:
                code = self.proc.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - handlers normally catch SIGINT
                self.forward(signal.SIGINT)
        for t in self.threads:
            t.join(timeout=30)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the launcher dies (Linux), so no orphan runs on."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _launch_one(
    spec: RunSpec,
    *,
    store: Store,
    config: dict[str, Any],
    files: list[str],
    seed: int,
    seeding: dict[str, Any],
    experiment: str,
    pattern: MetricPattern | None,
    outputs: list[str],
    stdout: IO[bytes],
    stderr: IO[bytes],
    on_start: Callable[[str, Path, int], None] | None,
) -> LaunchResult:
    cwd = spec.cwd or os.getcwd()
    run_config = {**config, "seed": seed}
    # Datasets first: a missing path stops here, before a run directory exists.
    datasets = fingerprint_config_data(config, store=store, base_dir=cwd, where=spec.config_path)
    run_id, run_dir, meta = new_run(
        store,
        experiment=experiment,
        name=spec.name,
        seed=seed,
        command=spec.command,
        cwd=cwd,
        launcher="cli",
        deterministic=spec.deterministic,
        seeding=seeding,
        extra={
            "overrides": list(spec.overrides),
            "metric_pattern": pattern.regex.pattern if pattern else None,
            **spec.record,
        },
    )
    meta["config"] = run_config
    meta["config_hash"] = record_config(run_dir, run_config, files=files, overrides=spec.overrides)
    if datasets:
        meta["data"] = datasets
    return _execute(
        spec,
        store=store,
        run_id=run_id,
        run_dir=run_dir,
        meta=meta,
        seed=seed,
        cwd=cwd,
        capture_dir=run_dir,
        pattern=pattern,
        outputs=outputs,
        stdout=stdout,
        stderr=stderr,
        on_start=on_start,
    )


def _resume(
    spec: RunSpec,
    *,
    store: Store,
    stdout: IO[bytes],
    stderr: IO[bytes],
    on_start: Callable[[str, Path, int], None] | None,
) -> LaunchResult:
    """Continue a recorded run in its own record: same seed, config and (default) command."""
    assert spec.resume is not None
    if spec.config_path or spec.overrides or spec.seed is not None or spec.seeds is not None:
        raise UsageError(
            "--resume continues a run with its recorded config and seed; drop -c, --set, "
            "--seed and --seeds (start a new run to change them)."
        )
    run_dir = store.resolve(spec.resume)
    run_id, meta, session = resume_run(run_dir, resume_completed=spec.resume_completed)
    command = tuple(spec.command) or tuple(meta.get("command") or ())
    if not command or REDACTED in command:
        raise UsageError(
            f"Run {run_id}'s recorded command held a secret and was redacted; give the command "
            "again after '--': replicator run --resume RUN -- python train.py ..."
        )
    spec = RunSpec(
        **{
            **spec.__dict__,
            "command": command,
            "overrides": tuple(meta.get("overrides") or ()),
            "deterministic": bool(meta.get("deterministic")),
        }
    )
    pattern_text = meta.get("metric_pattern")
    pattern = MetricPattern.compile(pattern_text) if pattern_text else None
    capture_dir = run_dir / "resumes" / f"{run_id}.resume-{session}"
    capture_dir.mkdir(parents=True, exist_ok=True)
    return _execute(
        spec,
        store=store,
        run_id=run_id,
        run_dir=run_dir,
        meta=meta,
        seed=int(meta["seed"]),
        cwd=str(meta.get("cwd") or os.getcwd()),
        capture_dir=capture_dir,
        pattern=pattern,
        outputs=[],
        stdout=stdout,
        stderr=stderr,
        on_start=on_start,
        resumed=True,
    )


def _execute(
    spec: RunSpec,
    *,
    store: Store,
    run_id: str,
    run_dir: Path,
    meta: dict[str, Any],
    seed: int,
    cwd: str,
    capture_dir: Path,
    pattern: MetricPattern | None,
    outputs: list[str],
    stdout: IO[bytes],
    stderr: IO[bytes],
    on_start: Callable[[str, Path, int], None] | None,
    resumed: bool = False,
) -> LaunchResult:
    env = {**os.environ, **spec.env}
    child_env = {
        **env,
        ENV_RUN_DIR: str(run_dir),
        "REPLICATOR_RUN_ID": run_id,
        ENV_SEED: str(seed),
        "PYTHONHASHSEED": str(seed),
        "PYTHONUNBUFFERED": "1",
        ENV_OVERRIDES: json.dumps(list(spec.overrides)),
        "REPLICATOR_EXPERIMENT_GIVEN": "1" if spec.experiment else "0",
    }
    if resumed:
        child_env["REPLICATOR_RESUME"] = "1"
    if spec.config_path:
        child_env[ENV_CONFIG] = str(Path(spec.config_path).resolve())
    if spec.deterministic:
        child_env.update(DETERMINISM_ENV)
        child_env["REPLICATOR_DETERMINISTIC"] = "1"
    code_summary = capture_all(
        capture_dir,
        run_id=capture_dir.name if resumed else run_id,
        cwd=cwd,
        store=store,
        executable=which_python(spec.command, child_env),
        env=child_env,
    )
    if resumed:
        meta["resumes"][-1]["code"] = code_summary
    else:
        meta["code"] = code_summary
    meta["child_env"] = {
        k: v
        for k, v in child_env.items()
        if k.startswith(("REPLICATOR_", "PYTHON")) or k in DETERMINISM_ENV
    }
    atomic_write_json(run_dir / "run.json", meta)
    watcher = OutputWatcher(cwd, declared=outputs, exclude=[store.root, Path(cwd) / ".git"])
    watcher.before()
    writer = MetricsWriter(run_dir / "metrics.jsonl", source="output") if pattern else None
    heartbeat = _Heartbeat(run_dir)
    if on_start is not None:
        on_start(run_id, run_dir, seed)
    # Handlers go in before the child exists, so that a signal arriving while it starts is
    # forwarded as soon as it can be (not lost, and not killing the launcher unrecorded).
    holder: list[_Child] = []
    pending: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if holder:
            holder[0].forward(signum)
        else:
            pending.append(signum)

    previous = {
        s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        try:
            child = _Child(spec.command, child_env, run_dir, pattern, writer, stdout, stderr, cwd)
        except OSError as exc:
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            message = f"cannot start {spec.command[0]!r}: {exc.strerror or exc}"
            set_status(run_dir, meta, "failed", exit_code=code, error=message)
            raise UsageError(f"Run {run_id}: {message}. Check the command after '--'.") from exc
        holder.append(child)
        for signum in pending:
            child.forward(signum)
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if writer:
            writer.close()
        heartbeat.stop()
    return _finalize(run_id, run_dir, meta, code, child.interrupted, writer, watcher, seed)


class _Heartbeat:
    def __init__(self, run_dir: Path) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(run_dir,), daemon=True)
        self._thread.start()

    def _loop(self, run_dir: Path) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL_S):
            touch_heartbeat(run_dir)

    def stop(self) -> None:
        self._stop.set()


def _finalize(
    run_id: str,
    run_dir: Path,
    meta: dict[str, Any],
    code: int,
    interrupted: str | None,
    writer: MetricsWriter | None,
    watcher: OutputWatcher,
    seed: int,
) -> LaunchResult:
    fields: dict[str, Any] = {"exit_code": code}
    if code < 0:
        fields["signal"] = signal.Signals(-code).name
    if interrupted and (code != 0):
        status = "interrupted"
        fields.setdefault("signal", interrupted)
    elif code == 0:
        status = "completed"
    else:
        status = "failed"
    # The script's own record of its config and experiment (inside the child) wins.
    try:
        meta["experiment"] = read_json(run_dir / "config" / "experiment.json")["experiment"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    script = run_dir / "config" / "script.json"
    if script.exists():
        try:
            recorded = read_json(script)
            meta["config"] = recorded["config"]
            meta["config_hash"] = recorded["config_hash"]
            if recorded.get("data"):
                meta["data"] = recorded["data"]
            if recorded.get("data_error"):
                meta["data_error"] = recorded["data_error"]
        except (OSError, ValueError, KeyError):
            pass
    try:
        atomic_write_json(run_dir / "outputs.json", watcher.after(), fsync=False)
    except OSError as exc:
        fields["outputs_error"] = str(exc)
    summary_path = run_dir / "summary.json"
    summary: dict[str, Any] = dict(writer.last) if writer else {}
    if summary_path.exists():
        try:
            summary.update(read_json(summary_path))
        except (OSError, ValueError):
            pass
    if summary:
        atomic_write_json(summary_path, summary)
    set_status(run_dir, meta, status, **fields)
    return LaunchResult(run_id=run_id, dir=run_dir, status=status, exit_code=code, seed=seed)
