"""``replicator reproduce RUN``: re-run a recorded run from its snapshot, in a fresh environment,
on the same data, with the same seed, config, command and variables, and say whether it
reproduced.

Stages, each reported through ``on_stage`` (and a progress sink), each failing with a
:class:`~replicator.reproduce.errors.ReproduceError` that names it:

host         compare the machine with the recorded one (CPU instruction sets, GPU, driver)
checkout     ``git worktree add --detach`` of the snapshot commit in a temporary directory
environment  ``--env fresh``: a new venv with the recorded packages (uv, else venv + pip);
             ``--env current``: the command's interpreter as it is now, after a check
data         verify the recorded dataset fingerprints (refuse, or warn with
             ``allow_data_change``); link data kept outside git into the checkout
run          :func:`replicator.record.launch.launch` as a new run, linked by ``reproduction_of``
compare      summary metrics, histories, output and checkpoint hashes -> a verdict
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
from ..errors import ReplicatorError, UsageError
from ..store import read_part
from ..store.store import Store, read_run
from .checkout import Checkout, checkout_code
from .compare import (
    Check,
    compare_checkpoints,
    compare_histories,
    compare_outputs,
    compare_summaries,
    verdict_of,
)
from .errors import STAGES, ReproduceError
from .rerun import current_python, rerun

__all__ = ["Reproduction", "StageResult", "format_verdict", "reproduce"]


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


def reproduce(
    ref: str,
    *,
    store: Store | None = None,
    env: str = "fresh",
    rtol: float = 0.0,
    atol: float = 0.0,
    metrics: Sequence[str] | None = None,
    keep: bool = False,
    allow_data_change: bool = False,
    workdir: str | os.PathLike[str] | None = None,
    use_uv: bool | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    on_stage: Callable[[str, str], None] | None = None,
    progress: Progress | None = None,
) -> Reproduction:
    """Re-run the recorded run ``ref`` and compare the new run with it (see the module doc)."""
    if env not in ("fresh", "current"):
        raise UsageError(f"--env must be 'fresh' or 'current', got '{env}'.")
    if rtol < 0 or atol < 0:
        raise UsageError("--rtol and --atol must not be negative.")
    store = store or Store.open()
    run_dir = store.resolve(ref)
    record = read_run(run_dir)
    if record.status == "running":
        raise UsageError(f"Run {record.id} is still running; reproduce it once it has finished.")
    meta = read_json(run_dir / "run.json")
    environment = read_part(run_dir, "environment.json")
    code = read_part(run_dir, "code.json")
    stages = _Stages(on_stage, progress)
    warnings: list[str] = []
    causes: list[str] = []
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    # always a directory of our own, so that cleaning up never removes the user's files
    base = Path(tempfile.mkdtemp(prefix="replicator-reproduce-", dir=workdir))
    checkouts: list[Checkout] = []
    try:
        with stages.stage("host") as detail:
            host = _host_warnings(run_dir)
            warnings += host
            detail.append(
                f"{len(host)} differences from the recorded host" if host else "same CPU and GPU"
            )
        with stages.stage("checkout") as detail:
            checkout = checkout_code(code, base / "code", patch=run_dir / "code.patch")
            checkouts.append(checkout)
            detail.append(f"{checkout.method} {checkout.commit[:12]} at {checkout.root}")
            if not checkout.matches_record:
                files = ", ".join(checkout.changed_files[:10]) or "unknown files"
                causes.append(
                    f"code: the checked-out tree {checkout.tree[:12]} differs from the recorded "
                    f"{str(checkout.recorded_tree)[:12]} ({files})"
                )
        python: Path | None
        with stages.stage("environment") as detail:
            if env == "fresh":
                # an empty package list is a stdlib-only environment; no list is no record
                if not isinstance(environment.get("packages"), dict):
                    raise ReproduceError(
                        "environment",
                        f"run {record.id} recorded no packages (environment.json).",
                        hint="Reproduce with --env current.",
                    )
                from .fresh_env import build_fresh_env

                fresh = build_fresh_env(
                    environment,
                    dest=base / "venv",
                    project=checkout,
                    workdir=base,
                    use_uv=use_uv,
                )
                checkouts += fresh.checkouts
                warnings += [f"environment: {n}" for n in fresh.notes]
                python = fresh.python
                detail.append(f"{fresh.tool} venv in {fresh.seconds:.1f}s at {fresh.prefix}")
            else:
                python = current_python(meta, environment, warnings)
                from ..compare.environment import check_environment

                result = check_environment(run_dir, python=python)
                top = result.within(3)
                warnings += [f"environment: {d.key}: {d.a} -> {d.b}" for d in top]
                detail.append(
                    f"{python}; {len(top)} differences in ranks 1-3"
                    if top
                    else f"{python}; ranks 1-3 match"
                )
        with stages.stage("data") as detail:
            data_warnings, data_causes = _verify_data(
                store, run_dir, meta, allow_data_change, detail
            )
            warnings += data_warnings
            causes += data_causes
            _link_data(meta, checkout)
        with stages.stage("run") as detail:
            result_run = rerun(
                meta,
                record.id,
                environment,
                checkout,
                run_dir,
                # --env current keeps an absolute interpreter path as recorded; a bare
                # `python` is pinned to the interpreter that was checked
                python=python
                if env == "fresh" or not os.path.isabs(str((meta.get("command") or [""])[0]))
                else None,
                fresh_prefix=(python.parent.parent if env == "fresh" and python else None),
                store=store,
                stdout=stdout,
                stderr=stderr,
            )
            detail.append(
                f"run {result_run.run_id} {result_run.status} (exit {result_run.exit_code})"
            )
        with stages.stage("compare") as detail:
            new_dir = result_run.dir
            checks = _compare(run_dir, new_dir, rtol=rtol, atol=atol, metrics=metrics)
            verdict = verdict_of(checks, run_status=result_run.status)
            if verdict == "failed":
                causes.insert(0, _failure_cause(result_run, new_dir))
            causes += _explain(run_dir, new_dir, meta, env)
            detail.append(verdict)
    except BaseException:
        if not keep:
            for c in checkouts:
                c.remove()
            shutil.rmtree(base, ignore_errors=True)
        raise
    kept: tuple[Path, ...] = ()
    if keep:
        kept = (base,)
    else:
        for c in checkouts:
            c.remove()
        shutil.rmtree(base, ignore_errors=True)
    outcome = Reproduction(
        original=record.id,
        run_id=result_run.run_id,
        run_dir=new_dir,
        verdict=verdict,
        env_mode=env,
        rtol=rtol,
        atol=atol,
        checks=tuple(checks),
        causes=tuple(causes)
        if verdict != "reproduced"
        else tuple(c for c in causes if c.startswith("data")),
        warnings=tuple(warnings),
        stages=tuple(stages.done),
        kept=kept,
    )
    atomic_write_json(new_dir / "verdict.json", outcome.as_dict())
    return outcome


def _failure_cause(result: Any, run_dir: Path) -> str:
    tail = _stderr_tail(run_dir)
    cause = f"run: the command {result.status} with exit code {result.exit_code}{tail}"
    if "FileNotFoundError" in tail or "No such file" in tail:
        cause += (
            " (files ignored by git are not in the code snapshot: declare datasets in the "
            "config's data: section so that reproduce verifies them and links them in)"
        )
    return cause


def _stderr_tail(run_dir: Path) -> str:
    try:
        text = (run_dir / "stderr.log").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    lines = text.splitlines()[-3:]
    return (": " + " | ".join(lines))[:400] if lines else ""


def _compare(
    original: Path, new: Path, *, rtol: float, atol: float, metrics: Sequence[str] | None
) -> list[Check]:
    from ..record.metrics import read_metrics

    a, b = read_run(original), read_run(new)
    checks = compare_summaries(a.summary, b.summary, rtol=rtol, atol=atol, metrics=metrics)
    checks += compare_histories(
        read_metrics(original / "metrics.jsonl"),
        read_metrics(new / "metrics.jsonl"),
        rtol=rtol,
        atol=atol,
        metrics=metrics,
    )
    checks += compare_outputs(read_part(original, "outputs.json"), read_part(new, "outputs.json"))
    checks += compare_checkpoints(original, new)
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
        lines.append(f"  {label}  {c.status:<16}{values}{detail}")
    if not rep.checks:
        lines.append("  (the run recorded no metrics and no output hashes)")
    for w in rep.warnings:
        lines.append(f"warning: {w}")
    if rep.causes:
        lines.append("Differences that may explain it:")
        lines += [f"  - {c}" for c in rep.causes]
    tol = f" (rtol {rep.rtol:g}, atol {rep.atol:g})" if rep.rtol or rep.atol else ""
    lines.append(f"Verdict: {rep.verdict.upper()}{tol}")
    for path in rep.kept:
        lines.append(f"kept: {path}")
    return lines
