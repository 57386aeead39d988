"""Comparing 2 to N runs in the UI: the ranked difference of ``replicator diff`` as table sections,
and their curves overlaid, with the mean and interval band of each group of seeds.

The difference is :func:`replicator.compare.runs.diff_runs` of the first run against each other
one, merged into one row per key (a run that does not differ from the first shows the first's
value), in the same order as ``replicator diff``: environment first, then seeds, config, data,
code, metrics and outputs. The bands are those of ``replicator report`` (the function comes from
the report, handed to :func:`replicator.ui.app.create_app`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..compare.runs import diff_runs
from ..config import flatten
from ..errors import UsageError
from ..store import RunRecord, Store
from ..store.frames import varying_keys
from ..store.record import read_run
from .data import changed_files, patch_of
from .metrics import MetricsCache
from .table import config_group

__all__ = ["compare_curves", "compare_runs"]

_TITLES = {
    "seeds": "Seeds",
    "config": "Config",
    "data": "Data",
    "code": "Code",
    "metrics": "Metrics",
    "outputs": "Outputs",
}
BAND = "ci"
LEVEL = 0.95
"""The report's learning-curve band: a t-interval of the mean per step at 95%."""


def _records(store: Store, dirs: list[Path]) -> list[RunRecord]:
    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for run_dir in dirs:
            try:
                records.append(read_run(run_dir, partial=True, stale_after=store.heartbeat_stale_s))
            except Exception as exc:
                raise UsageError(
                    f"Run {run_dir.name} is damaged and cannot be compared: {exc}"
                ) from None
    return records


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def compare_runs(store: Store, dirs: list[Path], cache: MetricsCache) -> dict[str, Any]:
    """``/api/compare``: the runs and the sections of their ranked difference."""
    records = _records(store, dirs)
    base = records[0]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for index, other in enumerate(records[1:], start=1):
        for d in diff_runs(base, other).differences:
            row = rows.get((d.section, d.key))
            if row is None:
                row = rows[(d.section, d.key)] = {
                    "section": d.section,
                    "key": d.key,
                    "rank": d.rank,
                    "values": {0: d.a},
                }
            row["rank"] = min(row["rank"], d.rank)
            row["values"][index] = d.b
    sections: dict[str, dict[str, Any]] = {}
    for row in sorted(rows.values(), key=lambda r: (r["rank"], r["key"])):
        section = row["section"]
        title = (
            "Environment" if section.startswith("environment") else _TITLES.get(section, section)
        )
        target = sections.setdefault(title, {"title": title, "rows": []})
        base_value = row["values"][0]
        target["rows"].append(
            {
                "key": row["key"],
                "values": [_text(row["values"].get(i, base_value)) for i in range(len(records))],
                "rank": row["rank"],
                "group": section.split(": ", 1)[1] if section.startswith("environment:") else None,
            }
        )
    code = sections.get("Code")
    files = _changed_files(records)
    if files:
        if code is None:
            code = sections["Code"] = {"title": "Code", "rows": []}
        code["changed_files"] = files
    elif code is not None:
        code["changed_files"] = []
    order = ["Environment", *_TITLES.values()]
    ordered = [sections[t] for t in order if t in sections]
    return {
        "runs": [
            {
                "id": r.id,
                "name": r.name,
                "experiment": r.experiment,
                "seed": r.seed,
                "status": r.status,
            }
            for r in records
        ],
        "sections": ordered,
        "metric_keys": _common_metric_keys(records, cache),
    }


def _changed_files(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Each run's files changed against its commit, with the patch of each file."""
    out = []
    for record in records:
        code = {} if (record.dir / "code.json").is_symlink() else record.part("code.json")
        patch_path = record.dir / "code.patch"
        patch = None
        if patch_path.is_file() and not patch_path.is_symlink():
            try:
                patch = patch_path.read_bytes()[:1_000_000].decode("utf-8", "replace")
            except OSError:
                patch = None
        for item in changed_files(code, patch):
            out.append({**item, "run": record.id, "patch": patch_of(patch, item["path"])})
    return out


def _common_metric_keys(records: list[RunRecord], cache: MetricsCache) -> list[str]:
    """The metrics every run logged, in the first run's order."""
    common: list[str] | None = None
    for record in records:
        series, _ = cache.series(record.dir)
        common = list(series) if common is None else [k for k in common if k in series]
    return common or []


def compare_curves(
    store: Store,
    dirs: list[Path],
    key: str,
    points: int,
    cache: MetricsCache,
    curve_bands: Callable[..., Any] | None,
) -> dict[str, Any]:
    """``/api/compare/curves``: each run's curve of ``key`` (downsampled) and, for each group of
    runs that differ only by seed, the mean and the report's interval band per step."""
    import numpy as np

    from .lttb import downsample

    records = _records(store, dirs)
    curves: dict[str, tuple[Any, Any]] = {}
    out_runs: dict[str, Any] = {}
    for record in records:
        arrays, _ = cache.arrays(record.dir)
        found = arrays.get(key)
        if found is None:
            out_runs[record.id] = {"step": [], "value": [], "total": 0}
            continue
        x, y = found
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        curves[record.id] = (x, y)
        xs, ys, _ = downsample(x, y, points)
        out_runs[record.id] = {
            "step": [int(s) for s in xs.tolist()],
            "value": ys.tolist(),
            "total": len(x),
        }
    flat = {r.id: flatten(r.config or {}) for r in records}
    keys = varying_keys(list(flat.values()))
    by_group: dict[str, list[RunRecord]] = {}
    for record in records:
        by_group.setdefault(config_group(flat[record.id]), []).append(record)
    groups = []
    for members in by_group.values():
        with_curve = [r for r in members if r.id in curves]
        if len(with_curve) < 2:
            continue
        groups.append(_group(with_curve, curves, flat, keys, points, curve_bands))
    return {
        "key": key,
        "runs": out_runs,
        "groups": groups,
        "band": _band_text() if curve_bands is not None else None,
    }


def _band_text() -> str:
    return f"mean ± {int(LEVEL * 100)}% t-CI per step (as in replicator report)"


def _group(
    members: list[RunRecord],
    curves: dict[str, tuple[Any, Any]],
    flat: dict[str, dict[str, Any]],
    keys: list[str],
    points: int,
    curve_bands: Callable[..., Any] | None,
) -> dict[str, Any]:
    import numpy as np

    all_steps = np.unique(np.concatenate([curves[r.id][0] for r in members]))
    if len(all_steps) > points:
        all_steps = all_steps[np.linspace(0, len(all_steps) - 1, points).astype(np.int64)]
        all_steps = np.unique(all_steps)
    values = np.full((len(members), len(all_steps)), np.nan)
    for i, record in enumerate(members):
        x, y = curves[record.id]
        inside = (all_steps >= x[0]) & (all_steps <= x[-1])
        values[i, inside] = np.interp(all_steps[inside], x, y)
    first = flat[members[0].id]
    label = ", ".join(f"{k}={_text(first.get(k))}" for k in keys) or "all selected runs"
    if curve_bands is not None:
        bands = curve_bands(values, steps=all_steps, band=BAND, level=LEVEL, label=label)
        mean, low, high = bands.mean, bands.low, bands.high
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mean = np.nanmean(values, axis=0)
        low = high = np.full_like(mean, np.nan)
    return {
        "label": label,
        "ids": [r.id for r in members],
        "step": [int(s) for s in all_steps.tolist()],
        "mean": _finite_list(mean),
        "low": _finite_list(low),
        "high": _finite_list(high),
        "n": len(members),
    }


def _finite_list(values: Any) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values.tolist()]
