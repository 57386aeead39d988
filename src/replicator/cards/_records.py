"""What the cards read from run records: the runs of a run id or experiment, their metrics
aggregated over seeds (n, mean, sample SD, min, max), durations, environment and hardware.

Only the files of the run directory are read (``run.json``, ``summary.json``,
``environment.json``, ``hardware.json``), so a card can be written for runs recorded by any
version of replicator, or by hand.

An experiment's runs are counted as ``replicator report`` counts them: one run per config and
seed, reproductions left out (:func:`replicator.store.frames.one_per_seed`), and grouped by the
config keys that vary between runs (seed keys aside). A card describes one group: the one chosen
with ``group`` (``KEY=VALUE``) or ``config_hash``, else the group with the most seeds, and says
which other groups exist.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.format import format_size
from ..config import flatten
from ..errors import RunNotFoundError, UsageError
from ..store import RunRecord, Store, StoreLike
from ..store.frames import one_per_seed, run_config_hash, varying_config_keys

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
    group: str | None = None
    """The config group the records are (``lr=0.1``); None when the runs share one config."""
    others: tuple[tuple[str, int], ...] = ()
    """The experiment's other config groups: (label, number of seeds)."""
    notes: tuple[str, ...] = ()
    """What a reader must know about the selection (groups, repeated seeds left out)."""
    considered: tuple[RunRecord, ...] = ()
    """Every counted run of the experiment, all groups (the hyperparameters considered)."""

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


def load_runs(
    ref: str,
    *,
    store: StoreLike = None,
    include_failed: bool = False,
    group: Sequence[str] = (),
    config_hash: str | None = None,
) -> RunSet:
    """The runs for a run reference (id, prefix, name, 'last') or, failing that, an experiment.

    An experiment's runs count once per config and seed and are narrowed to one config group:
    ``group`` (``KEY=VALUE`` items) or ``config_hash`` (a prefix), else the group with most seeds.
    """
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
    return _one_group(ref, usable, store.project_root, group=group, config_hash=config_hash)


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _one_group(
    ref: str,
    records: Sequence[RunRecord],
    project_root: Path,
    *,
    group: Sequence[str],
    config_hash: str | None,
) -> RunSet:
    """One run per config and seed, then the chosen config group (see :func:`load_runs`)."""
    selection = one_per_seed(records)
    counted = list(selection.kept)
    notes = list(selection.warnings)
    if len(counted) < len(records):
        notes.append(
            f"{len(records) - len(counted)} run(s) left out: "
            + "; ".join(f"{r.id} ({why})" for r, why in selection.left_out[:5])
            + (" ..." if len(selection.left_out) > 5 else "")
        )
    keys = varying_config_keys(r.config for r in counted)
    groups: dict[str, list[RunRecord]] = {}
    for r in counted:
        flat = flatten(r.config or {})
        label = ", ".join(f"{k}={_value_text(flat.get(k))}" for k in keys)
        groups.setdefault(label, []).append(r)

    def seeds(runs: list[RunRecord]) -> int:
        return len({r.seed for r in runs if r.seed is not None}) or len(runs)

    ranked = sorted(groups, key=lambda g: (-seeds(groups[g]), g))
    chosen = _chosen_groups(ranked, groups, group=group, config_hash=config_hash)
    label = chosen[0]
    if len(ranked) > 1:
        others = tuple((g, seeds(groups[g])) for g in ranked if g != label)
        how = (
            "chosen with --group/--config-hash"
            if group or config_hash
            else "the config with the most seeds"
        )
        notes.insert(
            0,
            f"The runs of '{ref}' have {len(ranked)} configs; this describes {label} "
            f"({seeds(groups[label])} seed(s)), {how}. Other configs: "
            + "; ".join(f"{g} ({n} seed(s))" for g, n in others)
            + ". Choose one with --group KEY=VALUE or --config-hash HASH.",
        )
    else:
        others = ()
    return RunSet(
        ref,
        ref,
        tuple(groups[label]),
        False,
        project_root,
        group=label if len(ranked) > 1 else None,
        others=others,
        notes=tuple(notes),
        considered=tuple(counted),
    )


def _chosen_groups(
    ranked: list[str],
    groups: dict[str, list[RunRecord]],
    *,
    group: Sequence[str],
    config_hash: str | None,
) -> list[str]:
    """The group labels that match ``group`` and ``config_hash`` (all, best first, if none given)."""
    wanted: list[tuple[str, str]] = []
    for item in group:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--group {item!r} must be KEY=VALUE, e.g. --group optim.lr=0.1.")
        wanted.append((key.strip().removeprefix("config."), value.strip()))

    def matches(r: RunRecord) -> bool:
        flat = flatten(r.config or {})
        if any(k not in flat or _value_text(flat[k]) != v for k, v in wanted):
            return False
        return config_hash is None or run_config_hash(r).startswith(config_hash)

    chosen = [g for g in ranked if any(matches(r) for r in groups[g])]
    if not chosen:
        known = "; ".join(
            f"{g or 'one config'} (config hash {run_config_hash(groups[g][0])[:12]})"
            for g in ranked
        )
        raise UsageError(
            f"No completed run matches {' '.join(group) or ''}"
            f"{' config hash ' + config_hash if config_hash else ''}; the configs are: {known}."
        )
    return chosen


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
