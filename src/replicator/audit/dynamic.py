"""The dynamic half of the audit: runs of one command through the real launcher, what each run
produced (:class:`Observation`), where two runs first differ (:class:`Divergence`), and the
re-runs that change one factor (:class:`Setting`) at a time.

Every run is an ordinary recorded run (``record.launch.launch``) filed under the experiment
``audit`` of the store, with ``audit`` in its ``run.json`` saying which setting it ran under.
A factor reaches the child through its environment only: ``PYTHONHASHSEED`` through an ``env``
prefix of the command (the launcher sets it to the run's seed otherwise), thread counts through
``OMP_NUM_THREADS`` and its kin, CPU cores through the affinity the child inherits, and the
rest through the probe (``_probe.py``) copied as ``sitecustomize.py`` into a folder put first
on ``PYTHONPATH``.

Runs go in parallel (``jobs`` processes, each launching one run at a time: the launcher forwards
signals, which only a main thread may do) unless the command writes files into its working
directory, where two runs would overwrite each other's outputs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..record.launch import RunSpec, launch
from ..store import read_part

__all__ = [
    "FACTORS",
    "Divergence",
    "Observation",
    "RunOutcome",
    "Setting",
    "first_divergence",
    "run_settings",
]

FACTORS: dict[str, str] = {
    "hashseed": "PYTHONHASHSEED (the order of sets and dicts of strings)",
    "threads": "thread counts of OpenMP/MKL/OpenBLAS/torch (the order of float reductions)",
    "cores": "CPU cores the run may use (affinity: worker timing, work split per core)",
    "clock": "the wall clock (seeds from the time, loops bounded by elapsed time)",
    "entropy": "OS entropy (generators created without a seed)",
    "completion": "the completion order of parallel tasks (as_completed, imap_unordered)",
    "listing": "the order of directory listings",
    "deterministic": "torch deterministic algorithms (nondeterministic kernels)",
}
"""Factor -> what it changes."""

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
_CUBLAS_DETERMINISTIC = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
_PROBE = Path(__file__).with_name("_probe.py")


@dataclass(frozen=True)
class Setting:
    """What one run of the audit changes; the default changes nothing."""

    hashseed: int | None = None
    threads: int | None = None
    cores: tuple[int, ...] | None = None
    clock: Mapping[str, Any] | None = None
    entropy: bool = False
    completion: str | None = None
    listing: str | None = None
    deterministic: bool = False

    def probe(self) -> dict[str, Any]:
        """The probe's settings (empty: no probe needed)."""
        wanted = {
            "clock": dict(self.clock) if self.clock else None,
            "entropy": self.entropy,
            "completion": self.completion,
            "listing": self.listing,
            "deterministic": self.deterministic,
        }
        return {k: v for k, v in wanted.items() if v}

    def describe(self) -> str:
        parts = []
        if self.hashseed is not None:
            parts.append(f"PYTHONHASHSEED={self.hashseed}")
        if self.threads is not None:
            parts.append(f"threads={self.threads}")
        if self.cores is not None:
            parts.append(f"cores={','.join(map(str, self.cores))}")
        if self.clock:
            parts.append(
                f"clock shifted {self.clock.get('offset', 0):+g} s"
                if self.clock.get("mode") == "shift"
                else "clock ticking per call"
            )
        if self.entropy:
            parts.append("entropy fixed")
        if self.completion:
            parts.append(f"completion order: {self.completion}")
        if self.listing:
            parts.append(f"listings: {self.listing}")
        if self.deterministic:
            parts.append("torch deterministic")
        return ", ".join(parts) or "as given"


@dataclass(frozen=True)
class Observation:
    """What one run produced: its metric histories, summary, and file hashes."""

    histories: Mapping[str, tuple[tuple[int, Any], ...]]
    summary: Mapping[str, Any]
    files: Mapping[str, str]
    # the stdout hash, compared only when the run recorded none of the above
    stdout: str = ""

    @classmethod
    def read(cls, run_dir: Path) -> Observation:
        from .._util.hashing import hash_file
        from ..store.metrics import read_metrics

        series: dict[str, list[tuple[int, Any]]] = {}
        for n, entry in enumerate(read_metrics(run_dir / "metrics.jsonl")):
            step = entry.get("step")
            key = str(entry.get("key"))
            series.setdefault(key, []).append(
                (int(step) if step is not None else n, entry["value"])
            )
        files: dict[str, str] = {}
        for item in read_part(run_dir, "outputs.json").get("files") or ():
            if isinstance(item, dict) and item.get("path"):
                files[f"output {item['path']}"] = str(item.get("blake3") or item.get("error"))
        checkpoints = run_dir / "checkpoints"
        if checkpoints.is_dir():
            for path in sorted(checkpoints.rglob("*")):
                if path.is_file() and path.name != "manifest.json":
                    files[f"checkpoint {path.relative_to(checkpoints)}"] = hash_file(path)
        stdout = run_dir / "stdout.log"
        return cls(
            histories={k: tuple(v) for k, v in series.items()},
            summary=read_part(run_dir, "summary.json"),
            files=files,
            stdout=hash_file(stdout) if stdout.is_file() else "",
        )

    @property
    def empty(self) -> bool:
        return not (self.histories or self.summary or self.files)


@dataclass(frozen=True)
class Divergence:
    """Where two runs first differ: a metric at a step, a summary value, a file, or the exit."""

    kind: str
    name: str
    a: Any
    b: Any
    step: int | None = None

    def describe(self) -> str:
        at = f" at step {self.step}" if self.step is not None else ""
        return f"{self.kind} {self.name}{at}: {_short(self.a)} vs {_short(self.b)}"

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "text": self.describe()}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and type(a) is type(b)


def first_divergence(
    a: Observation, b: Observation, *, max_steps: int | None = None
) -> Divergence | None:
    """The first difference between two runs' results (None: identical).

    Metric histories first, the earliest step over all metrics; then the summary, output and
    checkpoint hashes; stdout only when the runs recorded none of these. ``max_steps`` compares
    only the first K points of each history (and then neither summary nor files).
    """
    found: list[Divergence] = []
    for name in sorted(set(a.histories) | set(b.histories)):
        ha, hb = a.histories.get(name, ()), b.histories.get(name, ())
        if max_steps is not None:
            ha, hb = ha[:max_steps], hb[:max_steps]
        for (step_a, va), (step_b, vb) in zip(ha, hb):
            if step_a != step_b or not _same(va, vb):
                found.append(Divergence("metric", name, va, vb, step=min(step_a, step_b)))
                break
        else:
            if len(ha) != len(hb):
                longer = ha if len(ha) > len(hb) else hb
                step = longer[min(len(ha), len(hb))][0]
                found.append(
                    Divergence("metric", name, f"{len(ha)} points", f"{len(hb)} points", step)
                )
    if found:
        return min(found, key=lambda d: (d.step if d.step is not None else 0, d.name))
    if max_steps is not None and (a.histories or b.histories):
        return None
    for key in sorted(set(a.summary) | set(b.summary)):
        va, vb = a.summary.get(key), b.summary.get(key)
        if not _same(va, vb):
            return Divergence("summary", key, va, vb)
    for key in sorted(set(a.files) | set(b.files)):
        if a.files.get(key) != b.files.get(key):
            return Divergence(
                "file", key, a.files.get(key, "<absent>"), b.files.get(key, "<absent>")
            )
    if a.empty and b.empty and a.stdout != b.stdout:
        return Divergence("stdout", "stdout.log", a.stdout[:12], b.stdout[:12])
    return None


@dataclass(frozen=True)
class RunOutcome:
    """One run of the audit: its setting, the run it recorded, what it produced."""

    label: str
    setting: Setting
    run_id: str
    run_dir: Path
    status: str
    exit_code: int | None
    observation: Observation
    # whether the probe reached the command's interpreter (None: no probe was needed)
    probe_loaded: bool | None = None
    ops: tuple[Mapping[str, Any], ...] = ()
    # output files the run left in its working directory (runs then go one at a time)
    writes_cwd: bool = False
    # the user's Python files the run executed, as the probe saw them at exit
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Job:
    label: str
    spec: RunSpec
    setting: Setting
    store: str
    work: str
    record: Mapping[str, Any] = field(default_factory=dict)
    probe: bool = True


def _job_spec(job: _Job, probe_dir: Path | None) -> RunSpec:
    setting, spec = job.setting, job.spec
    env = dict(spec.env)
    command = tuple(spec.command)
    if setting.hashseed is not None:
        command = ("env", f"PYTHONHASHSEED={setting.hashseed}", *command)
    if setting.threads is not None:
        env.update({name: str(setting.threads) for name in THREAD_VARIABLES})
    if setting.deterministic:
        env.update(_CUBLAS_DETERMINISTIC)
    if probe_dir is not None:
        current = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(probe_dir), current) if p)
    return dataclasses.replace(
        spec,
        command=command,
        env=env,
        experiment="audit",
        name=f"audit {job.label}",
        record={
            **spec.record,
            "audit": {**job.record, "run": job.label, "setting": setting.describe()},
        },
    )


@contextmanager
def _affinity(cores: tuple[int, ...] | None) -> Iterator[None]:
    """Restrict this process (and so the child it starts) to ``cores`` for the block."""
    if cores is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _probe_events(probe_dir: Path) -> list[dict[str, Any]]:
    try:
        lines = (probe_dir / "probe.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _run_job(job: _Job) -> RunOutcome:
    """Launch one run under its setting (in a worker process: the launcher needs a main thread)."""
    probe_dir: Path | None = None
    settings = job.setting.probe()
    if job.probe or settings:
        probe_dir = Path(tempfile.mkdtemp(prefix=f"{job.label}-", dir=job.work))
        shutil.copyfile(_PROBE, probe_dir / "sitecustomize.py")
        (probe_dir / "probe.json").write_text(json.dumps(settings), encoding="utf-8")
    spec = _job_spec(job, probe_dir)
    with open(os.devnull, "wb") as sink, _affinity(job.setting.cores):
        [result] = launch(spec, store=job.store, stdout=sink, stderr=sink)
    events = _probe_events(probe_dir) if probe_dir is not None else []
    ops = {(e.get("op"), e.get("path"), e.get("line")): e for e in events if e.get("op")}
    files = {str(f) for e in events if e.get("event") == "files" for f in e.get("files") or ()}
    outputs = read_part(result.dir, "outputs.json")
    return RunOutcome(
        label=job.label,
        setting=job.setting,
        run_id=result.run_id,
        run_dir=result.dir,
        status=result.status,
        exit_code=result.exit_code,
        observation=Observation.read(result.dir),
        probe_loaded=None if probe_dir is None else any(e.get("event") == "loaded" for e in events),
        ops=tuple(
            {k: v for k, v in e.items() if k in ("op", "path", "line")} for e in ops.values()
        ),
        writes_cwd=outputs.get("mode") == "detected" and bool(outputs.get("files")),
        files=tuple(sorted(files)),
    )


def _context() -> Any:
    """forkserver where there is one: workers forked from a server that has the launcher
    imported already start in milliseconds (spawn would import it again in each)."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class Runner:
    """Runs settings of one command, in parallel where that is safe."""

    def __init__(
        self, spec: RunSpec, *, store: str, jobs: int, record: Mapping[str, Any] | None = None
    ) -> None:
        self.spec = spec
        self.store = store
        self.jobs = max(1, jobs)
        self.record = dict(record or {})
        self.sequential = False
        self._work = tempfile.mkdtemp(prefix="replicator-audit-")
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._work, ignore_errors=True)

    def run(self, settings: Sequence[tuple[str, Setting]], *, probe: bool) -> list[RunOutcome]:
        """One run per (label, setting), results in the order given."""
        jobs = [
            _Job(label, self.spec, setting, self.store, self._work, self.record, probe)
            for label, setting in settings
        ]
        # the launcher installs signal handlers: in this process only from the main thread
        here = threading.current_thread() is threading.main_thread()
        if here and (self.sequential or self.jobs == 1 or len(jobs) == 1):
            return [_run_job(job) for job in jobs]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=_context())
        if self.sequential:
            return [self._pool.submit(_run_job, job).result() for job in jobs]
        return list(self._pool.map(_run_job, jobs))


def run_settings(
    runner: Runner, settings: Sequence[tuple[str, Setting]], *, probe: bool = True
) -> list[RunOutcome]:
    """Run ``settings`` (``probe``: with the probe even when the setting needs none, to learn
    which files ran); when a run wrote files into the working directory, run them again one at
    a time (parallel runs would have mixed their outputs) and keep running one at a time."""
    outcomes = runner.run(settings, probe=probe)
    if not runner.sequential and len(settings) > 1 and any(o.writes_cwd for o in outcomes):
        runner.sequential = True
        outcomes = runner.run(settings, probe=probe)
    return outcomes
