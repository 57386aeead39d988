"""Known defects of earlier replicator versions that a reader can see in a run's files.

A run recorded by replicator 0.1.0 may hold a value that 0.1.0 got wrong (CHANGELOG "Fixed").
Where the files themselves show it, :func:`known_defects` names it for one run, and readers that
turn runs into numbers (``load_runs``, so ``report``, cards and statistics) warn with
:class:`KnownDefectWarning`. Each rule needs both: a run recorded by an affected version (its
``replicator_version`` in run.json, else replicator's version in environment.json; a run that
records neither counts as affected) *and* the defect's trace in its files, so a run recorded
without the defect is never flagged:

``resume-summary``
    a resumed run whose summary.json holds, for a logged metric, another value than the last one
    logged: 0.1.0 kept the value at the crash after a resume.
``parsed-metrics-duplicates``
    a resumed run whose metrics parsed from the output (``--metric-pattern``) hold a (key, step)
    twice: 0.1.0 appended the resumed session's lines without a resume marker.
``experiment-filing``
    a run filed under another experiment than the one its script named in
    ``config/experiment.json``: 0.1.0 wrote the script's name into run.json only when the launcher
    finished, so a run whose launcher died stayed under the guessed name.
``sweep-seed-unreached``
    one seed of a ``--seeds N`` sweep of a script that never imported replicator: 0.1.0 could not
    hand it the seed, so every run of the sweep may have used the script's own seed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._protocol import read_experiment
from .._util.warnings import warn
from .metrics import decode_value, read_metrics
from .record import RunRecord, read_part

__all__ = [
    "FIXED_AFTER",
    "KnownDefect",
    "KnownDefectWarning",
    "known_defects",
    "recorded_version",
    "warn_known_defects",
]

FIXED_AFTER = (0, 1, 0)
"""The last version with the defects below: runs recorded by it or earlier are checked."""


class KnownDefectWarning(UserWarning):
    """A run was recorded by a replicator version with a defect that shows in its files."""


@dataclass(frozen=True)
class KnownDefect:
    """One known defect of the version that recorded a run, as it shows in that run."""

    id: str
    """The defect's name (``resume-summary``, ...; see the module docstring)."""
    run_id: str
    version: str | None
    """The replicator version that recorded the run; None when the run does not say."""
    message: str
    """What is wrong in this run and what to do, in one sentence or two."""


def recorded_version(record: RunRecord) -> str | None:
    """The replicator version that recorded a run: run.json's ``replicator_version``, else the
    version of replicator in environment.json's packages; None when neither says."""
    version = record.meta.get("replicator_version")
    if isinstance(version, str):
        return version
    package = (read_part(record.dir, "environment.json").get("packages") or {}).get("replicator")
    if isinstance(package, dict) and isinstance(package.get("version"), str):
        return str(package["version"])
    return None


def _affected(version: str | None) -> bool:
    if version is None:
        return True
    numbers = tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])
    return numbers <= FIXED_AFTER


def known_defects(record: RunRecord) -> list[KnownDefect]:
    """The known defects that show in one run's files ([] for a run recorded by a fixed version)."""
    # A run of a fixed version says so in run.json: nothing of it is read.
    stated = record.meta.get("replicator_version")
    if isinstance(stated, str) and not _affected(stated):
        return []
    # Then the traces (absent from almost every run; metrics.jsonl read at most once), and the
    # version from environment.json only when one shows.
    files = _Files(record)
    traces = [(name, text) for name, rule in _RULES if (text := rule(record, files)) is not None]
    if not traces:
        return []
    version = recorded_version(record)
    if not _affected(version):
        return []
    by = f"replicator {version}" if version else "a replicator version that did not record itself"
    return [KnownDefect(name, record.id, version, text.replace(_BY, by)) for name, text in traces]


_BY = "\x00recorder\x00"
"""Stands in the rules' messages for the version that recorded the run, filled in at the end."""


class _Files:
    """A run's metric lines, read once when the first rule needs them."""

    def __init__(self, record: RunRecord) -> None:
        self._path = record.dir / "metrics.jsonl"
        self._entries: list[dict[str, Any]] | None = None

    def metrics(self) -> list[dict[str, Any]]:
        if self._entries is None:
            self._entries = read_metrics(self._path)
        return self._entries


def warn_known_defects(records: Iterable[RunRecord]) -> list[KnownDefect]:
    """Warn once per run that shows a known defect (:class:`KnownDefectWarning`); the defects."""
    defects = [defect for record in records for defect in known_defects(record)]
    for defect in defects:
        warn(defect.message, KnownDefectWarning)
    return defects


def _same(a: Any, b: Any) -> bool:
    a, b = decode_value(a), decode_value(b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _resume_summary(record: RunRecord, files: _Files) -> str | None:
    if not record.meta.get("resumes") or not record.summary:
        return None
    last: dict[str, tuple[Any, Any]] = {}
    for entry in files.metrics():
        last[entry["key"]] = (entry["value"], entry.get("step"))
    stale = [
        f"{key} is {record.summary[key]!r} there, {value!r} was logged last (step {step})"
        for key, (value, step) in last.items()
        if key in record.summary and not _same(record.summary[key], value)
    ]
    if not stale:
        return None
    return (
        f"Run {record.id} was resumed and recorded by {_BY}, which kept the values at the crash in "
        f"summary.json after a resume: {'; '.join(stale[:3])}. Take final values from its "
        "metrics (load_metrics, `replicator show`), not from its summary."
    )


def _parsed_duplicates(record: RunRecord, files: _Files) -> str | None:
    if not record.meta.get("resumes"):
        return None
    seen: set[tuple[str, Any]] = set()
    twice: list[tuple[str, Any]] = []
    for entry in files.metrics():
        if entry.get("source") != "output":
            continue
        pair = (entry["key"], entry.get("step"))
        if pair in seen:
            twice.append(pair)
        seen.add(pair)
    if not twice:
        return None
    key, step = twice[0]
    return (
        f"Run {record.id} was resumed and recorded by {_BY}, which appended the metrics parsed from "
        f"its output again without a resume marker: {len(twice)} (key, step) pairs appear twice "
        f"(first: {key} at step {step}) and readers return both. The later of each pair is the "
        "resumed session's."
    )


def _experiment_filing(record: RunRecord, files: _Files) -> str | None:
    named = read_experiment(record.dir)
    if named is None or named == record.experiment:
        return None
    return (
        f"Run {record.id} is filed under experiment '{record.experiment}' but its script named "
        f"'{named}' (config/experiment.json): {_BY} wrote the script's name into run.json only "
        f"when the launcher finished. Look for it under '{record.experiment}' too."
    )


def _sweep_seed(record: RunRecord, files: _Files) -> str | None:
    meta = record.meta
    seeding = meta.get("seeding")
    if meta.get("launcher") != "cli" or "command_run" in meta:
        return None
    if not isinstance(seeding, dict) or seeding.get("source") != "sweep":
        return None
    if (record.dir / "seeding.json").exists() or (record.dir / "config" / "script.json").exists():
        return None  # the script joined the run: it got the seed through replicator
    return (
        f"Run {record.id} is one seed of a sweep of a script that never imported replicator, "
        f"recorded by {_BY}, which could not hand such a script its seed: the sweep's runs may all "
        "have used the script's own seed. Re-run the sweep with `{seed}` in the command."
    )


_RULES = (
    ("resume-summary", _resume_summary),
    ("parsed-metrics-duplicates", _parsed_duplicates),
    ("experiment-filing", _experiment_filing),
    ("sweep-seed-unreached", _sweep_seed),
)
