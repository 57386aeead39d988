"""The end of a launched run: its status from the exit code, the script's own records adopted,
outputs and the parsed-metrics summary written, the final status line; and whether the script
joined the run (:func:`join_marks`) or the seed may not have reached it (:func:`seed_warning`)."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._protocol import read_experiment, read_script_config, write_script_config
from .._util.io import atomic_write_json, read_json
from ..mirror.worker import MirrorWorker
from ..store.record import distributed_record, read_ranks
from .imports import import_after_run
from .metrics import MetricsWriter
from .outputs import OutputWatcher
from .recorder import recordable_config, set_status
from .spec import LaunchResult, Target

__all__ = ["finalize", "join_marks", "read_summary", "seed_warning", "write_summary"]


def outcome(code: int, interrupted: str | None) -> tuple[str, dict[str, Any]]:
    fields: dict[str, Any] = {"exit_code": code}
    if code < 0:
        fields["signal"] = signal.Signals(-code).name
    if interrupted and (code != 0):
        fields.setdefault("signal", interrupted)
        return "interrupted", fields
    return ("completed" if code == 0 else "failed"), fields


def adopt_script_records(run_dir: Path, meta: dict[str, Any]) -> None:
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
    ranks = read_ranks(run_dir)
    if ranks:  # a distributed run: run.json itself says which ranks ran (readers merge them too)
        meta["distributed"] = distributed_record(meta, ranks)


def read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        summary = read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def write_summary(
    run_dir: Path, writer: MetricsWriter | None, *, before: Mapping[str, Any] | None = None
) -> None:
    """Metrics parsed from the output, under what the script set itself.

    ``before`` is a resumed run's summary as the earlier sessions left it: a value of it that
    this session has not rewritten gives way to a metric parsed in this session.
    """
    current = read_summary(run_dir)
    summary: dict[str, Any] = dict(writer.last) if writer else {}
    if before:
        old = {k: v for k, v in current.items() if k in before and before[k] == v}
        summary = {**old, **summary, **{k: v for k, v in current.items() if k not in old}}
    else:
        summary.update(current)
    if summary:
        atomic_write_json(run_dir / "summary.json", summary)


def finalize(
    target: Target,
    code: int,
    interrupted: str | None,
    writer: MetricsWriter | None,
    watcher: OutputWatcher,
    *,
    output_error: str | None = None,
    tensorboard_dir: str | None = None,
    mirrors: MirrorWorker | None = None,
) -> LaunchResult:
    """Record how the run ended; a run whose output could not all be recorded (``output_error``,
    e.g. ``disk full at <path>``) is 'failed' with that cause even when the command succeeded."""
    run_dir, meta = target.run_dir, target.meta
    status, fields = outcome(code, interrupted)
    adopt_script_records(run_dir, meta)
    try:
        atomic_write_json(run_dir / "outputs.json", watcher.after(), fsync=False)
    except OSError as exc:
        fields["outputs_error"] = str(exc)
    write_summary(run_dir, writer, before=target.summary_before if target.resumed else None)
    if writer is not None and writer.error:  # parsed metrics a write error cost (disk full)
        fields["metrics_error"] = writer.error
    if output_error:
        fields["error"] = output_error
        status = "failed" if status == "completed" else status
    session = meta["resumes"][-1]["time"] if target.resumed else meta["started"]
    imported = import_after_run(
        run_dir, cwd=target.cwd, started=session, tensorboard_dir=tensorboard_dir, status=status
    )
    imported.apply(meta)
    set_status(run_dir, meta, status, **fields)
    if mirrors is not None:  # the rest, the summary and the status into the sinks
        mirrors.close(status)
    return LaunchResult(
        run_id=target.run_id,
        dir=run_dir,
        status=status,
        exit_code=code,
        seed=target.seed,
        error=output_error,
    )


# Files a script that joins the run writes (start(): seeding.json; load_config()/start(cfg):
# config/script.json; start(experiment=...): config/experiment.json).
_JOIN_FILES = ("seeding.json", "config/script.json", "config/experiment.json")


def join_marks(run_dir: Path) -> list[int | None]:
    """The mtimes of the files a joining script writes: unchanged marks mean it never joined."""
    marks: list[int | None] = []
    for name in _JOIN_FILES:
        try:
            marks.append(os.stat(run_dir / name).st_mtime_ns)
        except OSError:
            marks.append(None)
    return marks


def seed_warning(target: Target) -> str:
    """What to say when the seed reached the script only through its environment."""
    return (
        f"the seed may not have reached your script: run {target.run_id}'s seed {target.seed} "
        "was given only as $REPLICATOR_SEED and PYTHONHASHSEED, and the script did not join "
        "the run (no replicator.start() or replicator.load_config()). If it takes a seed "
        "argument, pass it with a placeholder: replicator run ... -- python train.py --seed {seed}"
    )
