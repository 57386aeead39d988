"""``replicator audit``: run a command (or a recorded run's command) several times with the same
seed and config, say where the runs first differ, and find out by controlled re-runs which
factors change the result; with the static scan's findings, each marked confirmed or not.

The re-runs change one factor at a time against a reference:

- when the first runs agreed, the reference is the first run and each re-run *varies* one
  factor (another PYTHONHASHSEED, one thread, one core, a shifted clock, reversed listings,
  reversed completion order, torch deterministic mode);
- when they differed, the audit first pins every source of run-to-run variation it can (a clock
  that ticks per call, fixed OS entropy, completion in submission order, one thread, one core,
  torch deterministic mode) and runs that twice; if those two agree, each re-run *releases* one
  pinned factor (or varies an unpinned one), so that a change names the factor.

A factor whose re-run changed the result is a confirmed source; a static finding is confirmed
when a factor it depends on changed the result (``set-order``: hashseed; ``clock-seed``: clock or
entropy; ``unseeded-rng``: entropy; ``as-completed``: completion; ``unsorted-listing``:
listing; ``dataloader-workers``: cores or entropy; ``cuda-atomic-op``, ``cudnn-benchmark``:
deterministic; ``wall-clock-loop``: clock).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._protocol import REPLICATOR_CONFIG
from ..errors import UsageError
from ..record.launch import RunSpec
from ..redact import REDACTED
from ..store import Store, StoreLike, read_part
from .dynamic import (
    FACTORS,
    THREAD_VARIABLES,
    Divergence,
    Runner,
    RunOutcome,
    Setting,
    first_divergence,
    run_settings,
)
from .static import Finding, imported_modules, scan_paths

__all__ = ["AuditReport", "FactorResult", "audit", "format_audit"]

CHANGED = "changed"
UNCHANGED = "unchanged"
NOT_TESTED = "not tested"
HASHSEED_NOTE = (
    "reproducible only under replicator run: it sets PYTHONHASHSEED to the run's seed before "
    "Python starts; started with plain python, the result changes from run to run"
)
_CLOCK_SHIFT_S = 1_000_000.5
_ENTROPY_CALLS = ("urandom", "uuid", "token_bytes", "randbits")
_FINDING_FACTORS = {
    "set-order": ("hashseed",),
    "unseeded-rng": ("entropy",),
    "as-completed": ("completion",),
    "unsorted-listing": ("listing",),
    "dataloader-workers": ("cores", "entropy"),
    "cuda-atomic-op": ("deterministic",),
    "cudnn-benchmark": ("deterministic",),
    "nondeterministic-op": ("deterministic",),
    "wall-clock-loop": ("clock",),
}


@dataclass(frozen=True)
class FactorResult:
    """What changing one factor did: ``changed``, ``unchanged`` or ``not tested`` (and why)."""

    name: str
    status: str
    setting: str = ""
    run_id: str | None = None
    divergence: Divergence | None = None
    note: str = ""

    @property
    def changed(self) -> bool:
        return self.status == CHANGED

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": FACTORS[self.name],
            "status": self.status,
            "setting": self.setting,
            "run_id": self.run_id,
            "divergence": self.divergence.as_dict() if self.divergence else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class AuditReport:
    """The outcome: did the runs agree, where they first differed, each factor, each finding."""

    command: tuple[str, ...]
    cwd: str
    seed: int
    runs: tuple[str, ...]
    agreed: bool
    divergence: Divergence | None
    pinned: str
    factors: tuple[FactorResult, ...]
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()
    all_runs: tuple[str, ...] = ()
    seconds: float = 0.0
    of_run: str | None = None
    # the files of the working directory the command ran (empty: not known)
    files_run: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        """Confirmed sources: each factor that changed the result."""
        return tuple(f.name for f in self.factors if f.changed)

    @property
    def passed(self) -> bool:
        """The runs agreed and no confirmed source remains."""
        return self.agreed and not self.sources and not any(f.confirmed for f in self.findings)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": list(self.command),
            "cwd": self.cwd,
            "of_run": self.of_run,
            "seed": self.seed,
            "runs": list(self.runs),
            "agreed": self.agreed,
            "divergence": self.divergence.as_dict() if self.divergence else None,
            "pinned": self.pinned,
            "factors": [f.as_dict() for f in self.factors],
            "sources": list(self.sources),
            "findings": [f.as_dict() for f in self.findings],
            "notes": list(self.notes),
            "all_runs": list(self.all_runs),
            "files_run": list(self.files_run),
            "seconds": round(self.seconds, 3),
            "passed": self.passed,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True)
class _Context:
    seed: int
    cpus: tuple[int, ...]
    imports: frozenset[str]

    @property
    def torch(self) -> bool:
        return "torch" in self.imports

    @property
    def parallel(self) -> bool:
        return bool(self.imports & {"concurrent", "multiprocessing"})

    def more_threads(self) -> int:
        return max(2, len(self.cpus))

    def other_threads(self) -> int:
        """A thread count other than the one the runs use by default."""
        given = os.environ.get(THREAD_VARIABLES[0], "")
        current = int(given) if given.isdigit() else len(self.cpus)
        return 1 if current > 1 else 2


def _cpus() -> tuple[int, ...]:
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def _vary(ctx: _Context) -> list[tuple[str, Setting | str]]:
    """Each factor varied once from the runs as given (or why it is not tested)."""
    base = Setting()
    out: list[tuple[str, Setting | str]] = [
        ("hashseed", dataclasses.replace(base, hashseed=(ctx.seed + 1) % 2**32)),
        ("threads", dataclasses.replace(base, threads=ctx.other_threads())),
        (
            "cores",
            dataclasses.replace(base, cores=ctx.cpus[:1])
            if len(ctx.cpus) > 1
            else "only one CPU core is available to vary",
        ),
        ("clock", dataclasses.replace(base, clock={"mode": "shift", "offset": _CLOCK_SHIFT_S})),
        ("entropy", "the runs agreed: nothing drawn from OS entropy reached the results"),
        (
            "completion",
            dataclasses.replace(base, completion="reversed")
            if ctx.parallel
            else "the code imports neither concurrent nor multiprocessing",
        ),
        ("listing", dataclasses.replace(base, listing="reversed")),
        (
            "deterministic",
            dataclasses.replace(base, deterministic=True)
            if ctx.torch
            else "the code does not import torch",
        ),
    ]
    return out


def _pinned(ctx: _Context) -> Setting:
    return Setting(
        threads=1,
        cores=ctx.cpus[:1] if len(ctx.cpus) > 1 else None,
        clock={"mode": "tick", "start": 1.7e9, "step": 0.001},
        entropy=True,
        completion="submission" if ctx.parallel else None,
        deterministic=ctx.torch,
    )


def _release(ctx: _Context, pinned: Setting) -> list[tuple[str, Setting | str]]:
    """Each pinned factor released once (or an unpinned one varied) from the pinned runs."""
    rep = dataclasses.replace
    return [
        ("hashseed", rep(pinned, hashseed=(ctx.seed + 1) % 2**32)),
        ("threads", rep(pinned, threads=ctx.more_threads())),
        ("cores", rep(pinned, cores=None) if pinned.cores else "only one CPU core is available"),
        ("clock", rep(pinned, clock=None)),
        ("entropy", rep(pinned, entropy=False)),
        (
            "completion",
            rep(pinned, completion=None)
            if pinned.completion
            else "the code imports neither concurrent nor multiprocessing",
        ),
        ("listing", rep(pinned, listing="reversed")),
        (
            "deterministic",
            rep(pinned, deterministic=False)
            if pinned.deterministic
            else "the code does not import torch",
        ),
    ]


def _factor_result(
    name: str,
    planned: Setting | str,
    outcome: RunOutcome | None,
    reference: RunOutcome,
    *,
    max_steps: int | None,
) -> FactorResult:
    if isinstance(planned, str) or outcome is None:
        return FactorResult(name, NOT_TESTED, note=str(planned))
    setting = planned.describe()
    if outcome.probe_loaded is False and name not in ("hashseed", "threads", "cores"):
        return FactorResult(
            name,
            NOT_TESTED,
            setting,
            outcome.run_id,
            note="the probe did not reach the command's Python (not a Python command, or "
            "python -I/-S): this factor could not be changed",
        )
    divergence = _divergence(reference, outcome, max_steps=max_steps)
    note = ""
    if name == "hashseed" and divergence is not None:
        note = HASHSEED_NOTE
    ops = [f"{op.get('op')} at {op.get('path')}:{op.get('line')}" for op in outcome.ops]
    if ops:
        note = (
            (note + "; " if note else "")
            + "torch reports no deterministic kernel for "
            + ", ".join(ops)
        )
    status = CHANGED if divergence is not None else UNCHANGED
    return FactorResult(name, status, setting, outcome.run_id, divergence, note)


def _divergence(a: RunOutcome, b: RunOutcome, *, max_steps: int | None) -> Divergence | None:
    if (a.status, a.exit_code) != (b.status, b.exit_code):
        return Divergence(
            "exit", "status", f"{a.status} ({a.exit_code})", f"{b.status} ({b.exit_code})"
        )
    return first_divergence(a.observation, b.observation, max_steps=max_steps)


def _factors_of(finding: Finding) -> tuple[str, ...]:
    if finding.code == "clock-seed":
        return (
            ("entropy",)
            if any(c in finding.message for c in _ENTROPY_CALLS)
            else ("clock", "entropy")
        )
    return _FINDING_FACTORS.get(finding.code, ())


def _confirm(finding: Finding, factors: Mapping[str, FactorResult]) -> Finding:
    tested = [
        factors[n] for n in _factors_of(finding) if n in factors and factors[n].status != NOT_TESTED
    ]
    if not tested:
        return finding
    return dataclasses.replace(finding, confirmed=any(f.changed for f in tested))


def _op_findings(outcomes: Sequence[RunOutcome], cwd: str, changed: bool | None) -> list[Finding]:
    seen: dict[tuple[str, int], Finding] = {}
    for outcome in outcomes:
        for op in outcome.ops:
            path = str(op.get("path"))
            shown = os.path.relpath(path, cwd) if os.path.isabs(path) else path
            line = int(op.get("line") or 0)
            seen.setdefault(
                (shown, line),
                Finding(
                    shown,
                    line,
                    "nondeterministic-op",
                    f"torch reports no deterministic implementation of {op.get('op')}",
                    "replicator run --deterministic (torch.use_deterministic_algorithms(True)), "
                    "or an op with a deterministic kernel",
                    confirmed=changed,
                ),
            )
    return list(seen.values())


@dataclass(frozen=True)
class _Target:
    spec: RunSpec
    of_run: str | None


def _recorded(ref: str, store: Store, spec_overrides: Mapping[str, Any]) -> _Target:
    """The command, config, seed and directory of a recorded run, as a RunSpec."""
    run_dir = store.resolve(ref)
    meta = read_part(run_dir, "run.json")
    command = tuple(str(p) for p in meta.get("command") or ())
    if not command:
        raise UsageError(f"Run {run_dir.name} recorded no command: nothing to audit.")
    if REDACTED in command:
        raise UsageError(
            f"Run {run_dir.name}'s recorded command held a secret and was redacted; audit the "
            "command itself: replicator audit -- python train.py ..."
        )
    child_env = meta.get("child_env") if isinstance(meta.get("child_env"), Mapping) else {}
    config = REPLICATOR_CONFIG.get(child_env) if child_env else None
    overrides = tuple(str(o) for o in meta.get("overrides") or ())
    if any(REDACTED in o for o in overrides):
        raise UsageError(
            f"Run {run_dir.name}'s --set overrides held a secret and were recorded redacted; "
            "audit the command itself with the overrides given again."
        )
    cwd = str(meta.get("cwd") or os.getcwd())
    if not Path(cwd).is_dir():
        raise UsageError(
            f"Run {run_dir.name} ran in {cwd}, which no longer exists; audit its command from "
            "the project: replicator audit -- " + " ".join(command)
        )
    spec = RunSpec(
        command=command,
        config_path=str(config) if config else None,
        overrides=overrides,
        seed=int(meta.get("seed") or 0),
        metric_pattern=meta.get("metric_pattern"),
        cwd=cwd,
        literal_command="command_run" not in meta,
    )
    return _Target(dataclasses.replace(spec, **spec_overrides), run_dir.name)


def audit(
    target: str | Sequence[str],
    *,
    runs: int = 2,
    max_steps: int | None = None,
    seed: int | None = None,
    config_path: str | None = None,
    overrides: Sequence[str] = (),
    metric_pattern: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    store: StoreLike = None,
    jobs: int | None = None,
    scan: bool = True,
    factors: Sequence[str] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> AuditReport:
    """Audit a command (a sequence of arguments) or a recorded run (its id, or ``last``).

    The command runs ``runs`` times with the same seed (``seed``, default 0) and config, then
    once per factor; every run is recorded in ``store`` under the experiment ``audit``.
    ``max_steps`` compares only the first K points of each metric history. ``jobs`` runs that
    many at a time (default: the CPU count, at most 4). ``factors`` re-runs only those (names
    of :data:`FACTORS`); the others read ``not tested``.
    """
    started = time.perf_counter()
    if runs < 2:
        raise UsageError(f"--runs must be at least 2 to compare runs, got {runs}.")
    if max_steps is not None and max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, got {max_steps}.")
    unknown = sorted(set(factors or ()) - set(FACTORS))
    if unknown:
        raise UsageError(
            f"Unknown factor(s) {', '.join(unknown)}; choose from {', '.join(FACTORS)}."
        )
    store = Store.coerce(store)
    given: dict[str, Any] = {}
    if seed is not None:
        given["seed"] = seed
    if metric_pattern is not None:
        given["metric_pattern"] = metric_pattern
    if isinstance(target, str):
        if config_path or overrides:
            raise UsageError("An audit of a recorded run uses its config; drop -c and --set.")
        resolved = _recorded(target, store, given)
    else:
        if not target:
            raise UsageError(
                "No command to audit. Put it after '--', e.g. replicator audit -- python train.py"
            )
        spec = RunSpec(
            command=tuple(target),
            config_path=config_path,
            overrides=tuple(overrides),
            seed=0,
            cwd=str(Path(cwd).resolve()) if cwd is not None else os.getcwd(),
        )
        resolved = _Target(dataclasses.replace(spec, **given), None)
    spec = resolved.spec
    workdir = spec.cwd or os.getcwd()
    ctx = _Context(int(spec.seed or 0), _cpus(), frozenset(imported_modules([workdir])))
    findings = scan_paths([workdir], root=workdir) if scan else []
    progress = on_progress or (lambda _: None)
    record = {"of_run": resolved.of_run} if resolved.of_run else {}
    with Runner(
        spec, store=str(store.root), jobs=jobs or min(4, len(ctx.cpus)), record=record
    ) as runner:
        return _audit_runs(
            runner,
            spec,
            ctx,
            findings,
            resolved,
            runs=runs,
            max_steps=max_steps,
            progress=progress,
            started=started,
            factors=factors,
        )


def _audit_runs(
    runner: Runner,
    spec: RunSpec,
    ctx: _Context,
    findings: list[Finding],
    resolved: _Target,
    *,
    runs: int,
    max_steps: int | None,
    progress: Callable[[str], None],
    started: float,
    factors: Sequence[str] | None = None,
) -> AuditReport:
    progress(f"{runs} runs with seed {ctx.seed}")
    baseline = run_settings(runner, [(f"run-{i + 1}", Setting()) for i in range(runs)], probe=False)
    _check_ran(baseline)
    done = list(baseline)
    divergence = None
    for other in baseline[1:]:
        divergence = _divergence(baseline[0], other, max_steps=max_steps)
        if divergence is not None:
            break
    notes: list[str] = []
    if runner.sequential:
        notes.append("the command writes files into its working directory: runs went one at a time")
    pinned_text = "nothing (the runs agreed)"
    reference = baseline[0]
    plan: list[tuple[str, Setting | str]]
    if divergence is None:
        plan = _vary(ctx)
    else:
        pinned = _pinned(ctx)
        pinned_text = pinned.describe()
        progress(f"the runs differ; 2 runs with {pinned_text}")
        pair = run_settings(runner, [("pinned-1", pinned), ("pinned-2", pinned)])
        done += pair
        still = _divergence(pair[0], pair[1], max_steps=max_steps)
        if still is None:
            reference = pair[0]
            plan = _release(ctx, pinned)
        else:
            pinned_text += " (the runs still differ)"
            why = (
                "the runs differ even with " + pinned.describe() + f" ({still.describe()}): the "
                "source is one the audit cannot pin (GPU kernels, data-loader timing, memory "
                "addresses, another process); see the static findings"
            )
            notes.append(why)
            plan = [
                (name, "the runs differ even with every pinnable factor pinned") for name in FACTORS
            ]
    if factors is not None:
        plan = [(n, p if n in factors else "not selected (--factor)") for n, p in plan]
    to_run = [(name, p) for name, p in plan if not isinstance(p, str)]
    progress(f"{len(to_run)} re-runs, one factor each")
    outcomes = dict(zip((n for n, _ in to_run), run_settings(runner, to_run))) if to_run else {}
    done += outcomes.values()
    results = {
        name: _factor_result(name, p, outcomes.get(name), reference, max_steps=max_steps)
        for name, p in plan
    }
    workdir = spec.cwd or os.getcwd()
    ran = sorted({os.path.relpath(f, workdir) for o in done for f in o.files})
    confirmed = [_confirm(f, results) if not ran or f.path in ran else f for f in findings]
    det = results.get("deterministic")
    det_changed = None if det is None or det.status == NOT_TESTED else det.changed
    confirmed += _op_findings(done, workdir, det_changed)
    return AuditReport(
        command=tuple(spec.command),
        cwd=spec.cwd or os.getcwd(),
        seed=ctx.seed,
        runs=tuple(o.run_id for o in baseline),
        agreed=divergence is None,
        divergence=divergence,
        pinned=pinned_text,
        factors=tuple(results.values()),
        findings=tuple(confirmed),
        notes=tuple(notes),
        all_runs=tuple(o.run_id for o in done),
        seconds=time.perf_counter() - started,
        of_run=resolved.of_run,
        files_run=tuple(ran),
    )


def _check_ran(baseline: Sequence[RunOutcome]) -> None:
    """Every first run failing alike means the command does not run: nothing to compare."""
    first = baseline[0]
    if first.status != "completed" and all(
        (o.status, o.exit_code) == (first.status, first.exit_code) for o in baseline
    ):
        raise UsageError(
            f"The command {first.status} (exit {first.exit_code}) in each of the audit's "
            f"{len(baseline)} runs, so there is nothing to compare; see "
            f"{first.run_dir / 'stderr.log'} and fix the command first."
        )


def format_audit(report: AuditReport) -> list[str]:
    """The report as text lines: the runs, each factor, each finding, the verdict."""
    what = f"run {report.of_run}'s command" if report.of_run else "command"
    lines = [
        f"Audit of {what} `{' '.join(report.command)}` in {report.cwd} "
        f"(seed {report.seed}, {len(report.all_runs)} runs, {report.seconds:.1f} s)"
    ]
    runs = ", ".join(report.runs)
    if report.agreed:
        lines.append(f"Runs: {len(report.runs)} agreed ({runs})")
    else:
        assert report.divergence is not None
        lines.append(f"Runs: DIFFER ({runs}); first at {report.divergence.describe()}")
        lines.append(f"Pinned for the re-runs: {report.pinned}")
    lines.append("Factors (one changed per re-run):")
    width = max(len(n) for n in FACTORS)
    for f in report.factors:
        status = "CHANGES the result" if f.changed else f.status
        detail = f.divergence.describe() if f.divergence else f.setting
        lines.append(f"  {f.name.ljust(width)}  {status:<18}  {detail}")
        if f.note:
            lines.append(f"  {''.ljust(width)}  -> {f.note}")
    if report.findings:
        lines.append("Findings in the code:")
        for finding in report.findings:
            mark = {True: "confirmed", False: "not confirmed", None: "not tested"}[
                finding.confirmed
            ]
            if report.files_run and finding.path not in report.files_run:
                mark = "not run by the command"
            lines.append(f"  {finding.where}  {finding.code}  [{mark}]  {finding.message}")
            lines.append(f"      fix: {finding.fix}")
    else:
        lines.append("Findings in the code: none")
    lines += [f"note: {n}" for n in report.notes]
    if report.passed:
        lines.append("Verdict: REPEATABLE (the runs agreed; no factor changed the result)")
    else:
        sources = list(report.sources) + [f.where for f in report.findings if f.confirmed]
        why = "the runs differ" if not report.agreed else "a factor changes the result"
        listed = f": {', '.join(sources)}" if sources else ""
        lines.append(f"Verdict: NOT REPEATABLE ({why}{listed})")
    return lines
