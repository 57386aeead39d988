"""``replicator reproduce RUN``: re-run a recorded run from its snapshot, in a fresh environment,
on the same data, with the same seed, config, command and variables, and say whether it
reproduced.

Stages, each reported through ``on_stage`` (and a progress sink), each failing with a
:class:`~replicator.errors.ReproduceError` that names it:

host         compare the machine with the recorded one (CPU instruction sets, GPU, driver)
checkout     ``git worktree add --detach`` of the snapshot commit in a temporary directory
environment  ``--env fresh``: a new venv with the recorded packages (uv, else venv + pip);
             ``--env current``: the command's interpreter as it is now, after a check
data         verify the recorded dataset fingerprints (refuse, or warn with
             ``allow_data_change``); link data kept outside git into the checkout
run          :func:`replicator.record.launch.launch` as a new run, linked by ``reproduction_of``
compare      summary metrics, histories, output files (paired by their place in the run's
             output folder, timestamped folders normalised) and checkpoints -> a verdict
             that names the results that decided it; logs and config dumps are reported
             but do not decide (``--outputs`` names the files that do)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .._util.io import atomic_write_json, read_json
from .._util.progress import NullProgress, Progress
from ..audit import likely_causes
from ..errors import ReplicatorError, ReproduceError, UsageError
from ..store import RunRecord, Store, StoreLike, read_part, read_run
from .checkout import Checkout, checkout_code
from .compare import (
    Check,
    compare_checkpoints,
    compare_histories,
    compare_outputs,
    compare_summaries,
    decision,
    verdict_of,
)
from .failure import failure_cause
from .rerun import current_python, rerun
from .stages import STAGES

__all__ = ["ReproduceOptions", "Reproduction", "StageResult", "format_verdict", "reproduce"]


@dataclass(frozen=True)
class StageResult:
    """What one stage did and how long it took."""

    name: str
    seconds: float
    detail: str


@dataclass(frozen=True)
class Reproduction:
    """The outcome: the new run, the verdict, every check, and what may explain a mismatch."""

    original: str
    run_id: str | None
    run_dir: Path | None
    verdict: str
    env_mode: str
    rtol: float
    atol: float
    checks: tuple[Check, ...] = ()
    causes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    stages: tuple[StageResult, ...] = ()
    kept: tuple[Path, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    decided_by: str = ""

    @property
    def reproduced(self) -> bool:
        return self.verdict in ("reproduced", "reproduced within tolerance")

    @property
    def exit_code(self) -> int:
        return 0 if self.reproduced else 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "original": self.original,
            "run_id": self.run_id,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "verdict": self.verdict,
            "decided_by": self.decided_by,
            "reproduced": self.reproduced,
            "env": self.env_mode,
            "rtol": self.rtol,
            "atol": self.atol,
            "checks": [c.as_dict() for c in self.checks],
            "causes": list(self.causes),
            "warnings": list(self.warnings),
            "stages": [
                {"name": s.name, "seconds": round(s.seconds, 4), "detail": s.detail}
                for s in self.stages
            ],
            "kept": [str(p) for p in self.kept],
            **dict(self.extra),
        }


class _Stages:
    """Times stages, reports them, and turns unexpected errors into stage errors."""

    def __init__(
        self, on_stage: Callable[[str, str], None] | None, progress: Progress | None
    ) -> None:
        self.done: list[StageResult] = []
        self.on_stage = on_stage
        self.progress = progress or NullProgress()
        self.progress.set_total(len(STAGES))

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        started = time.perf_counter()
        detail: list[str] = []
        if self.on_stage:
            self.on_stage(name, "started")
        try:
            yield detail
        except ReproduceError:
            raise
        except ReplicatorError as exc:
            raise ReproduceError(name, str(exc)) from exc
        except OSError as exc:
            raise ReproduceError(name, f"{type(exc).__name__}: {exc}") from exc
        text = "; ".join(detail)
        self.done.append(StageResult(name, time.perf_counter() - started, text))
        self.progress.advance(1)
        if self.on_stage:
            self.on_stage(name, text or "done")


def _host_warnings(run_dir: Path) -> list[str]:
    from ..capture.hardware import capture_hardware
    from ..compare.environment import diff_environments

    recorded = read_part(run_dir, "hardware.json")
    if not recorded:
        return ["no hardware.json recorded; the host cannot be compared"]
    result = diff_environments({}, recorded, {}, capture_hardware(), a="recorded", b="this host")
    return [f"host: {d.key}: {d.a} -> {d.b}" for d in result.differences if d.rank in (4, 5)]


def _verify_data(
    store: Store, run_dir: Path, meta: Mapping[str, Any], allow: bool, detail: list[str]
) -> tuple[list[str], list[str]]:
    """(warnings, causes) for the recorded datasets; raises when data changed and not allowed."""
    data = meta.get("data") or {}
    if not data:
        detail.append("no datasets declared by the run (nothing to verify)")
        return [], []
    from ..data import verify

    report = verify(against=str(run_dir), store=store)
    problems = []
    for check in report.checks:
        if check.status == "match":
            continue
        what = check.diff.summary() if check.diff is not None else check.note or "digest differs"
        problems.append(f"data: dataset '{check.name}' at {check.path} {check.status}: {what}")
    detail.append(f"{len(report.checks) - len(problems)}/{len(report.checks)} datasets match")
    if problems and not allow:
        raise ReproduceError(
            "data",
            "; ".join(problems),
            hint="Restore the data, or pass --allow-data-change to run on the changed data.",
        )
    return problems, problems


def _link_data(meta: Mapping[str, Any], checkout: Checkout) -> None:
    """Datasets inside the repository but outside git (ignored) are linked into the checkout."""
    for record in (meta.get("data") or {}).values():
        path = record.get("abspath")
        if not path or not checkout.contains(path) or not os.path.exists(path):
            continue
        target = checkout.path_for(path)
        if not os.path.lexists(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)


def _restored_env_notes(run_dir: Path) -> list[str]:
    """What the reproduction set again of the original's variables, and which secrets it could not."""
    meta = read_part(run_dir, "run.json")
    notes = []
    restored = list(meta.get("restored_env") or ())
    if restored:
        from ..capture.environment import is_library_variable

        named = [n for n in restored if is_library_variable(n)]
        others = len(restored) - len(named)
        text = ", ".join(named) if named else ""
        if others:
            text += f"{' and ' if named else ''}{others} other variable(s) you had set"
        notes.append(
            f"environment: set as recorded: {text} (all in restored_env of the new run's run.json)"
        )
    if meta.get("secret_env_not_restored"):
        names = ", ".join(meta["secret_env_not_restored"])
        notes.append(f"environment: secret variables not restored (set them yourself): {names}")
    return notes


@dataclass(frozen=True)
class ReproduceOptions:
    """How to reproduce: :func:`reproduce`'s keyword options, passed on as one object."""

    env: str = "fresh"
    rtol: float = 0.0
    atol: float = 0.0
    metrics: Sequence[str] | None = None
    outputs: Sequence[str] | None = None
    keep: bool = False
    allow_data_change: bool = False
    workdir: str | os.PathLike[str] | None = None
    use_uv: bool | None = None
    installer: str | None = None
    stdout: IO[bytes] | None = None
    stderr: IO[bytes] | None = None
    on_stage: Callable[[str, str], None] | None = None
    progress: Progress | None = None

    def check(self) -> None:
        """Raise UsageError for an option the CLI would have refused."""
        if self.env not in ("fresh", "current"):
            raise UsageError(f"--env must be 'fresh' or 'current', got '{self.env}'.")
        if self.rtol < 0 or self.atol < 0:
            raise UsageError("--rtol and --atol must not be negative.")
        if self.installer not in (None, "uv", "pip"):
            raise UsageError(f"--installer must be 'uv' or 'pip', got '{self.installer}'.")


def reproduce(
    ref: str,
    *,
    store: StoreLike = None,
    env: str = "fresh",
    rtol: float = 0.0,
    atol: float = 0.0,
    metrics: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    keep: bool = False,
    allow_data_change: bool = False,
    workdir: str | os.PathLike[str] | None = None,
    use_uv: bool | None = None,
    installer: str | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    on_stage: Callable[[str, str], None] | None = None,
    progress: Progress | None = None,
) -> Reproduction:
    """Re-run the recorded run ``ref`` and compare the new run with it (see the module doc).

    ``metrics`` (glob patterns) selects the summary values and histories compared, and the
    output files and checkpoints that decide unless ``outputs`` (glob patterns on paths
    relative to the working directory, timestamps written ``<time>``) names those.
    """
    options = ReproduceOptions(
        env=env,
        rtol=rtol,
        atol=atol,
        metrics=metrics,
        outputs=outputs,
        keep=keep,
        allow_data_change=allow_data_change,
        workdir=workdir,
        use_uv=use_uv,
        installer=installer,
        stdout=stdout,
        stderr=stderr,
        on_stage=on_stage,
        progress=progress,
    )
    options.check()
    attempt = _Attempt.open(ref, Store.coerce(store), options)
    try:
        attempt.run_stages()
    except BaseException:
        if not options.keep:
            attempt.clean_up()
        raise
    kept: tuple[Path, ...] = ()
    if options.keep:
        kept = (attempt.base,)
    else:
        attempt.clean_up()
    outcome = attempt.outcome(kept)
    atomic_write_json(attempt.new_dir / "verdict.json", outcome.as_dict())
    return outcome


class _Attempt:
    """One reproduction in progress: what was read from the record and what each stage found."""

    # set by the stages, in order
    checkout: Checkout
    python: Path | None
    result: Any
    new_dir: Path
    checks: list[Check]
    verdict: str

    def __init__(
        self, store: Store, run_dir: Path, record: RunRecord, options: ReproduceOptions
    ) -> None:
        self.store = store
        self.run_dir = run_dir
        self.record = record
        self.options = options
        self.meta = read_json(run_dir / "run.json")
        self.environment = read_part(run_dir, "environment.json")
        self.code = read_part(run_dir, "code.json")
        self.stages = _Stages(options.on_stage, options.progress)
        self.warnings: list[str] = []
        self.causes: list[str] = []
        self.checkouts: list[Checkout] = []
        if options.workdir is not None:
            Path(options.workdir).mkdir(parents=True, exist_ok=True)
        # always a directory of our own, so that cleaning up never removes the user's files
        self.base = Path(tempfile.mkdtemp(prefix="replicator-reproduce-", dir=options.workdir))

    @classmethod
    def open(cls, ref: str, store: Store, options: ReproduceOptions) -> _Attempt:
        run_dir = store.resolve(ref)
        record = read_run(run_dir)
        if record.status == "running":
            raise UsageError(
                f"Run {record.id} is still running; reproduce it once it has finished."
            )
        return cls(store, run_dir, record, options)

    def run_stages(self) -> None:
        self.check_host()
        self.check_out()
        self.build_environment()
        self.verify_data()
        self.rerun()
        self.compare()

    def check_host(self) -> None:
        with self.stages.stage("host") as detail:
            host = _host_warnings(self.run_dir)
            self.warnings += host
            detail.append(
                f"{len(host)} differences from the recorded host" if host else "same CPU and GPU"
            )

    def check_out(self) -> None:
        with self.stages.stage("checkout") as detail:
            checkout = checkout_code(
                self.code, self.base / "code", patch=self.run_dir / "code.patch"
            )
            self.checkouts.append(checkout)
            self.checkout = checkout
            detail.append(f"{checkout.method} {checkout.commit[:12]} at {checkout.root}")
            if not checkout.matches_record:
                files = ", ".join(checkout.changed_files[:10]) or "unknown files"
                self.causes.append(
                    f"code: the checked-out tree {checkout.tree[:12]} differs from the recorded "
                    f"{str(checkout.recorded_tree)[:12]} ({files})"
                )

    def build_environment(self) -> None:
        with self.stages.stage("environment") as detail:
            if self.options.env == "fresh":
                self._build_fresh(detail)
            else:
                self._check_current(detail)

    def _build_fresh(self, detail: list[str]) -> None:
        # an empty package list is a stdlib-only environment; no list is no record
        if not isinstance(self.environment.get("packages"), dict):
            raise ReproduceError(
                "environment",
                f"run {self.record.id} recorded no packages (environment.json).",
                hint="Reproduce with --env current.",
            )
        from .fresh_env import build_fresh_env

        fresh = build_fresh_env(
            self.environment,
            dest=self.base / "venv",
            project=self.checkout,
            workdir=self.base,
            use_uv=self.options.use_uv,
            installer=self.options.installer,
        )
        self.checkouts += fresh.checkouts
        self.warnings += [f"environment: {n}" for n in fresh.notes]
        self.python = fresh.python
        how = "cached" if fresh.cached else "built"
        detail.append(f"{fresh.tool} venv {how} in {fresh.seconds:.1f}s at {fresh.prefix}")

    def _check_current(self, detail: list[str]) -> None:
        python = current_python(self.meta, self.environment, self.warnings)
        self.python = python
        from ..compare.environment import check_environment

        result = check_environment(self.run_dir, python=python)
        top = result.within(3)
        self.warnings += [f"environment: {d.key}: {d.a} -> {d.b}" for d in top]
        detail.append(
            f"{python}; {len(top)} differences in ranks 1-3"
            if top
            else f"{python}; ranks 1-3 match"
        )

    def verify_data(self) -> None:
        with self.stages.stage("data") as detail:
            data_warnings, data_causes = _verify_data(
                self.store, self.run_dir, self.meta, self.options.allow_data_change, detail
            )
            self.warnings += data_warnings
            self.causes += data_causes
            _link_data(self.meta, self.checkout)

    def rerun(self) -> None:
        fresh = self.options.env == "fresh"
        python = self.python
        with self.stages.stage("run") as detail:
            self.result = rerun(
                self.meta,
                self.record.id,
                self.environment,
                self.checkout,
                self.run_dir,
                # --env current keeps an absolute interpreter path as recorded; a bare
                # `python` is pinned to the interpreter that was checked
                python=python
                if fresh or not os.path.isabs(str((self.meta.get("command") or [""])[0]))
                else None,
                fresh_prefix=(python.parent.parent if fresh and python else None),
                store=self.store,
                stdout=self.options.stdout,
                stderr=self.options.stderr,
            )
            detail.append(
                f"run {self.result.run_id} {self.result.status} (exit {self.result.exit_code})"
            )
            self.warnings += _restored_env_notes(self.result.dir)

    def compare(self) -> None:
        options = self.options
        with self.stages.stage("compare") as detail:
            self.new_dir = new_dir = self.result.dir
            self.checks = _compare(
                self.run_dir,
                new_dir,
                rtol=options.rtol,
                atol=options.atol,
                metrics=options.metrics,
                outputs=options.outputs,
                roots=self._roots(new_dir),
            )
            self.verdict = verdict_of(self.checks, run_status=self.result.status)
            if self.verdict == "failed":
                self.causes.insert(
                    0, failure_cause(self.result, new_dir, self.checkout, original=self.run_dir)
                )
            explained = _explain(self.run_dir, new_dir, self.meta, options.env)
            if self.verdict != "reproduced":  # add the audit's view: recorded facts, findings
                explained = likely_causes(
                    self.run_dir, explained, code_root=self.checkout.root, run_ref=self.record.id
                )
            self.causes += explained
            detail.append(self.verdict)

    def _roots(self, new_dir: Path) -> list[str]:
        """The folders the two runs ran in: contents that embed them differ by them only."""
        new_meta, new_code = read_part(new_dir, "run.json"), read_part(new_dir, "code.json")
        paths = [
            self.meta.get("cwd"),
            self.code.get("repo"),
            new_meta.get("cwd"),
            new_code.get("repo"),
            str(self.checkout.root),
        ]
        roots = {str(p) for p in paths if p}
        return sorted(roots | {str(Path(p).resolve()) for p in roots})

    def clean_up(self) -> None:
        for c in self.checkouts:
            c.remove()
        shutil.rmtree(self.base, ignore_errors=True)

    def outcome(self, kept: tuple[Path, ...]) -> Reproduction:
        causes = tuple(self.causes)
        if self.verdict == "reproduced":
            causes = tuple(c for c in causes if c.startswith("data"))
        return Reproduction(
            original=self.record.id,
            run_id=self.result.run_id,
            run_dir=self.new_dir,
            verdict=self.verdict,
            env_mode=self.options.env,
            rtol=self.options.rtol,
            atol=self.options.atol,
            checks=tuple(self.checks),
            causes=causes,
            warnings=tuple(self.warnings),
            stages=tuple(self.stages.done),
            kept=kept,
            decided_by=decision(self.checks, self.verdict),
        )


def _compare(
    original: Path,
    new: Path,
    *,
    rtol: float,
    atol: float,
    metrics: Sequence[str] | None,
    outputs: Sequence[str] | None = None,
    roots: Sequence[str] = (),
) -> list[Check]:
    from ..store.metrics import read_metrics

    a, b = read_run(original), read_run(new)
    checks = compare_summaries(a.summary, b.summary, rtol=rtol, atol=atol, metrics=metrics)
    checks += compare_histories(
        read_metrics(original / "metrics.jsonl"),
        read_metrics(new / "metrics.jsonl"),
        rtol=rtol,
        atol=atol,
        metrics=metrics,
    )
    # --outputs names the files that decide; without it --metrics does
    select = outputs or metrics
    checks += compare_outputs(
        read_part(original, "outputs.json"),
        read_part(new, "outputs.json"),
        original_root=a.meta.get("cwd"),
        reproduced_root=b.meta.get("cwd"),
        roots=roots,
        select=select,
        rtol=rtol,
        atol=atol,
    )
    checks += compare_checkpoints(original, new, select=select)
    return checks


def _explain(original: Path, new: Path, meta: Mapping[str, Any], env: str) -> list[str]:
    """Recorded differences between the original and the reproduction, most likely cause first."""
    from ..compare.environment import diff_run_environments

    causes = []
    new_meta = read_part(new, "run.json")
    if meta.get("config_hash") != new_meta.get("config_hash"):
        causes.append(
            f"config: hash {str(meta.get('config_hash'))[:12]} -> "
            f"{str(new_meta.get('config_hash'))[:12]}"
        )
    code_a, code_b = read_part(original, "code.json"), read_part(new, "code.json")
    if code_a.get("snapshot_tree") and code_a.get("snapshot_tree") != code_b.get("snapshot_tree"):
        causes.append(
            f"code: snapshot tree {str(code_a.get('snapshot_tree'))[:12]} -> "
            f"{str(code_b.get('snapshot_tree'))[:12]}"
        )
    result = diff_run_environments(original, new)
    for d in result.differences:
        if d.rank <= 6 or (d.key.startswith("package ") and not d.key.endswith(" path")):
            note = f" ({d.note})" if d.note else ""
            causes.append(f"environment [{d.rank}] {d.key}: {d.a} -> {d.b}{note}")
    return causes


def format_verdict(rep: Reproduction) -> list[str]:
    """The verdict table as text lines: one line per check, then warnings and causes."""
    lines = [f"Reproduction of {rep.original} as run {rep.run_id} (--env {rep.env_mode})"]
    width = max((len(f"{c.kind} {c.name}") for c in rep.checks), default=10)
    for c in rep.checks:
        label = f"{c.kind} {c.name}".ljust(width)
        values = (
            ""
            if c.original is None and c.reproduced is None
            else f"  {c.original} -> {c.reproduced}"
        )
        detail = f"  ({c.detail})" if c.detail else ""
        aside = "" if c.decides or not c.comparable else f"  [{c.role}: does not decide]"
        lines.append(f"  {label}  {c.status:<16}{values}{detail}{aside}")
    if not rep.checks:
        lines.append("  (the run recorded no metrics and no output hashes)")
    for w in rep.warnings:
        lines.append(f"warning: {w}")
    if rep.causes:
        lines.append("Differences that may explain it:")
        lines += [f"  - {c}" for c in rep.causes]
    tol = f" (rtol {rep.rtol:g}, atol {rep.atol:g})" if rep.rtol or rep.atol else ""
    if rep.decided_by:
        lines.append(f"Decided by: {rep.decided_by}")
    lines.append(f"Verdict: {rep.verdict.upper()}{tol}")
    for path in rep.kept:
        lines.append(f"kept: {path}")
    return lines
