"""What the cards read from run records: the runs of a run id or experiment, their metrics
aggregated over seeds (n, mean, sample SD, min, max), durations, environment and hardware.

Only the files of the run directory are read (``run.json``, ``summary.json``,
``environment.json``, ``hardware.json``), so a card can be written for runs recorded by any
version of replicator, or by hand.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.format import format_size
from ..config import flatten
from ..errors import RunNotFoundError, UsageError
from ..store import RunRecord, Store, StoreLike

__all__ = [
    "MetricSummary",
    "RunSet",
    "dataset_text",
    "format_duration",
    "load_runs",
    "summarise_metrics",
]

TO_WRITE = "[To be written by the author]"


@dataclass(frozen=True)
class MetricSummary:
    """One metric over the runs that report it: n, mean, sample SD (ddof=1), min and max."""

    name: str
    n: int
    mean: float
    sd: float | None
    low: float
    high: float

    def text(self, digits: int = 4) -> str:
        spread = f" ± {self.sd:.{digits}g} (mean ± SD" if self.sd is not None else " (single run"
        return f"{self.mean:.{digits}g}{spread}, n={self.n})"


@dataclass(frozen=True)
class RunSet:
    """The runs a card describes: one run, or every completed run of an experiment."""

    label: str
    experiment: str
    records: tuple[RunRecord, ...]
    single: bool
    project_root: Path

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.records if r.seed is not None]

    def durations(self) -> list[float]:
        out = []
        for r in self.records:
            if r.meta.get("duration_s") is not None:
                out.append(float(r.meta["duration_s"]))
            elif r.started is not None and r.ended is not None:
                out.append(max(0.0, float(r.ended) - float(r.started)))
        return out

    def first_file(self, name: str) -> dict[str, Any]:
        """The first readable, non-empty JSON part ``name`` among the runs (environment.json...)."""
        for r in self.records:
            data = r.part(name)
            if data:
                return data
        return {}

    def metrics(self) -> list[MetricSummary]:
        """Each summary metric aggregated over the runs (see :func:`summarise_metrics`)."""
        return summarise_metrics(self.records)

    def hardware(self) -> list[str]:
        """The hardware of the first run that recorded it, one line a part (CPU, GPU...)."""
        return hardware_text(self.first_file("hardware.json"))

    def datasets(self) -> dict[str, dict[str, Any]]:
        """Dataset fingerprint records (run.json ``data``) by name, from the runs."""
        found: dict[str, dict[str, Any]] = {}
        for r in self.records:
            data = r.meta.get("data")
            if isinstance(data, dict):
                for name, record in data.items():
                    if isinstance(record, dict):
                        found.setdefault(str(name), record)
        return found


def load_runs(ref: str, *, store: StoreLike = None, include_failed: bool = False) -> RunSet:
    """The runs for a run reference (id, prefix, name, 'last') or, failing that, an experiment."""
    store = Store.coerce(store)
    try:
        record = store.get(ref)
    except RunNotFoundError:
        record = None
    if record is not None:
        return RunSet(record.id, record.experiment, (record,), True, store.project_root)
    records = [r for r in store.records() if r.experiment == ref]
    if not records:
        experiments = sorted({r.experiment for r in store.records()})
        known = ", ".join(experiments[:10]) or "none yet"
        raise RunNotFoundError(
            f"No run or experiment '{ref}' in {store.root} (experiments: {known}). "
            "Use `replicator ls` to list runs."
        )
    usable = records if include_failed else [r for r in records if r.status == "completed"]
    if not usable:
        raise UsageError(
            f"Experiment '{ref}' has {len(records)} run(s) but none completed; a card needs "
            "completed runs (statuses: " + ", ".join(sorted({r.status for r in records})) + ")."
        )
    return RunSet(ref, ref, tuple(usable), False, store.project_root)


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def summarise_metrics(records: Iterable[RunRecord]) -> list[MetricSummary]:
    """Every numeric summary metric, aggregated over the runs that report it."""
    values: dict[str, list[float]] = {}
    for r in records:
        for key, value in flatten(r.summary).items():
            number = _numeric(value)
            if number is not None:
                values.setdefault(key, []).append(number)
    out = []
    for name in sorted(values):
        xs = values[name]
        sd = statistics.stdev(xs) if len(xs) > 1 else None
        out.append(MetricSummary(name, len(xs), statistics.fmean(xs), sd, min(xs), max(xs)))
    return out


def format_duration(seconds: float) -> str:
    """``42 s``, ``12.5 min`` or ``3.20 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def dataset_text(record: dict[str, Any]) -> str:
    """A recorded dataset's file count and size: ``3 file(s), 1.2 MiB``."""
    return f"{record.get('nfiles', 1)} file(s), {format_size(float(record.get('size') or 0))}"


def hardware_text(hardware: dict[str, Any]) -> list[str]:
    """Bullet lines describing CPU, memory and GPUs from hardware.json."""
    lines = []
    cpu = hardware.get("cpu") or {}
    if cpu:
        cores = cpu.get("logical_cores")
        lines.append(
            f"CPU: {cpu.get('model') or cpu.get('machine') or 'unknown'}"
            + (f", {cores} logical cores" if cores else "")
        )
    memory = (hardware.get("memory") or {}).get("total_bytes")
    if memory:
        lines.append(f"Memory: {format_size(float(memory))}")
    gpu = hardware.get("gpu") or {}
    devices = gpu.get("devices") or []
    if devices:
        names: dict[str, int] = {}
        for d in devices:
            names[str(d.get("name"))] = names.get(str(d.get("name")), 0) + 1
        parts = [f"{count} x {name}" for name, count in names.items()]
        driver = devices[0].get("driver")
        lines.append("GPU: " + ", ".join(parts) + (f" (driver {driver})" if driver else ""))
    elif hardware:
        lines.append("GPU: none recorded")
    return lines


def software_text(environment: dict[str, Any], *, packages: Iterable[str] = ()) -> list[str]:
    """Bullet lines for Python, OS, torch/CUDA and selected package versions."""
    lines = []
    python = environment.get("python") or {}
    if python.get("version"):
        lines.append(
            f"Python {str(python['version']).split()[0]} ({python.get('implementation', '')})"
        )
    system = environment.get("os") or {}
    if system:
        lines.append(
            "OS: "
            + " ".join(
                str(system.get(k)) for k in ("distribution", "system", "release") if system.get(k)
            )
        )
    torch = environment.get("torch") or {}
    if torch.get("version"):
        lines.append(
            f"torch {torch['version']}" + (f", CUDA {torch['cuda']}" if torch.get("cuda") else "")
        )
    installed = environment.get("packages") or {}
    if isinstance(installed, dict):
        for name in packages:
            info = installed.get(name)
            if isinstance(info, dict) and info.get("version"):
                lines.append(f"{name} {info['version']}")
    return lines
