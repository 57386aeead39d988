"""Build a report for one experiment: results table, plots, runs, environment, methods.

:func:`build_report` gathers everything from the store; :func:`render_report` turns it into one
self-contained HTML page (plots inlined as base64 PNG, styles inline, no scripts, nothing fetched
from the network) or the table alone in Markdown, LaTeX or CSV. Runs that did not complete
(failed, crashed, interrupted, still running) are excluded from the numbers and listed with
their status. Each seed counts once: reproductions are left out (unless
``include_reproductions``) and of several runs with the same config and seed only the latest
completed one is counted (:func:`replicator.store.frames.one_per_seed`); the others are listed
with the reason, and a warning names the repeated seeds.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util.io import atomic_write
from .._version import __version__
from ..errors import UsageError
from ..stats._common import column
from ..store import DamagedRun
from .results import ResultsTable, results_table
from .tables import to_csv, to_html, to_latex, to_markdown

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store, StoreLike

__all__ = ["FORMATS", "Report", "build_report", "render_report", "write_report"]

FORMATS = ("html", "md", "latex", "csv")
"""The formats a report is written in (``replicator report --format``)."""
_ENV_FILES = ("environment.json", "hardware.json")
# Big or private parts of environment.json that do not belong in a summary table.
_ENV_SKIP = ("packages", "env", "environ", "variables", "lock", "argv", "path", "files")
# Facts that name the machine or the user's directories: left out of a report that may be shared.
_ENV_PRIVATE = ("executable", "prefix", "host", "user", "home", "cwd")


@dataclass(frozen=True)
class Figure:
    title: str
    uri: str
    caption: str


@dataclass(frozen=True)
class Report:
    """A built report: the results table, the runs it was made from, its figures and environment summary."""

    experiment: str
    table: ResultsTable
    runs: pd.DataFrame
    excluded: tuple[tuple[str, str, str], ...]
    figures: tuple[Figure, ...]
    environment: tuple[tuple[str, str], ...]
    by: str | None
    metric: str
    generated: str
    store: str
    seed_warnings: tuple[str, ...] = ()


def _pick_metric(runs: pd.DataFrame, metric: str | None) -> str:
    if metric:
        return metric
    names = [c.removeprefix("summary.") for c in runs.columns if c.startswith("summary.")]
    if len(names) == 1:
        return names[0]
    raise UsageError(
        f"Choose the metric to report with --metric; these runs record: {', '.join(names) or '(none)'}."
    )


def _pick_group(runs: pd.DataFrame, by: str | None) -> str | None:
    if by:
        return by
    from ..store.frames import varying_keys  # the rule the cards use on records

    columns = [c for c in runs.columns if c.startswith("config.")]
    rows = runs[columns].rename(columns=lambda c: c.removeprefix("config.")).to_dict("records")
    varying = varying_keys(rows)
    if len(varying) <= 1:
        return varying[0] if varying else None
    raise UsageError(
        f"Several config keys vary across these runs ({', '.join(varying)}); choose one with --group-by."
    )


def _leaves(obj: Any, prefix: str, out: dict[str, str], depth: int = 0) -> None:
    """Scalar facts of a JSON document, flattened, skipping bulky or private branches."""
    if depth > 3:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if any(s in str(k).lower() for s in _ENV_SKIP + _ENV_PRIVATE):
                continue
            _leaves(v, f"{prefix}{k}.", out, depth + 1)
    elif isinstance(obj, list):
        if obj and len(obj) <= 8 and all(isinstance(v, dict) for v in obj):
            for i, v in enumerate(obj):
                _leaves(v, f"{prefix}{i}.", out, depth + 1)
        elif obj and len(obj) <= 8 and all(isinstance(v, str | int | float | bool) for v in obj):
            out[prefix.rstrip(".")] = ", ".join(map(str, obj))
    elif isinstance(obj, str | int | float | bool) and len(str(obj)) <= 120:
        out[prefix.rstrip(".")] = str(obj)


_KEY_PACKAGES = ("numpy", "scipy", "torch", "jax", "jaxlib", "tensorflow", "scikit-learn", "pandas")


def _recorded_facts(env: dict[str, Any], hw: dict[str, Any]) -> dict[str, str]:
    """Readable facts from the environment.json/hardware.json that replicator records."""
    facts: dict[str, str] = {}
    py = env.get("python") or {}
    if py.get("version_info"):
        facts["Python"] = ".".join(map(str, py["version_info"])) + f" ({py.get('implementation')})"
    osf = env.get("os") or {}
    if osf:
        extra = ", ".join(x for x in (f"kernel {osf.get('release')}", osf.get("libc")) if x)
        facts["OS"] = f"{osf.get('distribution') or osf.get('system')} ({extra})"
    packages = env.get("packages") or {}
    for name in _KEY_PACKAGES:
        if name in packages:
            facts[name] = str(packages[name].get("version"))
    torch = env.get("torch") or {}
    if torch.get("version"):
        facts["torch build"] = f"{torch['version']}" + (
            f" (CUDA {torch['cuda']})" if torch.get("cuda") else " (no CUDA)"
        )
    for name, value in sorted((env.get("relevant_env") or {}).items()):
        if name != "PYTHONHASHSEED":  # follows each run's seed
            facts[f"${name}"] = str(value)
    cpu = hw.get("cpu") or {}
    if cpu:
        facts["CPU"] = f"{cpu.get('model')} ({cpu.get('logical_cores')} logical cores)"
        if cpu.get("numeric_flags"):
            facts["CPU instruction sets"] = " ".join(cpu["numeric_flags"])
    memory = (hw.get("memory") or {}).get("total_bytes")
    if memory:
        facts["Memory"] = f"{memory / 2**30:.1f} GiB"
    gpu = hw.get("gpu") or {}
    if gpu:
        names = [str(d.get("name")) for d in gpu.get("devices") or []]
        facts["GPUs"] = ", ".join(names) if names else "none"
        if gpu.get("driver"):
            facts["NVIDIA driver"] = str(gpu["driver"])
    for pool in hw.get("blas") or []:
        label = f"BLAS ({pool.get('internal_api')})"
        facts[label] = (
            f"{pool.get('version')}, {pool.get('num_threads')} threads, {pool.get('architecture')}"
        )
    return facts


def environment_summary(run_dirs: list[str], *, limit: int = 60) -> tuple[tuple[str, str], ...]:
    """Facts from each run's environment.json/hardware.json: one value, or the values and counts."""
    per_key: dict[str, Counter[str]] = {}
    readable = 0
    for d in run_dirs:
        docs: dict[str, dict[str, Any]] = {}
        for name in _ENV_FILES:
            try:
                doc = json.loads((Path(d) / name).read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):
                continue  # missing or damaged: the report goes on without it
            if isinstance(doc, dict):
                docs[name] = doc
        if not docs:
            continue
        readable += 1
        env, hw = docs.get("environment.json", {}), docs.get("hardware.json", {})
        facts: dict[str, str] | None = None
        if isinstance(env.get("python"), dict) and "version_info" in env["python"]:
            try:
                facts = _recorded_facts(env, hw)  # replicator's own layout: curated and readable
            except (TypeError, AttributeError, ValueError, KeyError):
                facts = None  # a field of the wrong type: every leaf as it is, below
        if facts is None:
            facts = {}
            for name, doc in docs.items():
                _leaves(doc, f"{name.removesuffix('.json')}.", facts)
        for k, v in facts.items():
            per_key.setdefault(k, Counter())[v] += 1
    rows = []
    for key in list(per_key)[:limit]:
        counts = per_key[key]
        if len(counts) == 1 and sum(counts.values()) == readable:
            rows.append((key, next(iter(counts))))
        else:
            rows.append(
                (
                    key,
                    "; ".join(
                        f"{v} ({c} run{'s' if c != 1 else ''})" for v, c in counts.most_common(5)
                    ),
                )
            )
    if readable < len(run_dirs):
        rows.append(("(runs without environment facts)", str(len(run_dirs) - readable)))
    return tuple(rows)


def build_report(
    experiment: str,
    *,
    store: StoreLike = None,
    by: str | None = None,
    metric: str | None = None,
    mode: str = "max",
    baseline: str | None = None,
    center: str = "mean",
    test: str = "welch",
    correction: str = "holm",
    level: float = 0.95,
    seed: int | None = 0,
    plots: bool = True,
    include_reproductions: bool = False,
) -> Report:
    """Gather the table, plots, run list and environment facts of ``experiment``.

    One value per seed: reproductions are left out unless ``include_reproductions``, and several
    runs of one config and seed count once (the latest completed); both are listed as excluded.
    """
    from ..store import Store as _Store

    opened = _Store.coerce(store)
    done, excluded, seed_warnings = _completed_runs(
        experiment, opened, reproductions=include_reproductions
    )
    metric = _pick_metric(done, metric)
    by = _pick_group(done, by)
    table = results_table(
        done,
        metric=metric,
        by=by,
        mode=mode,
        baseline=baseline,
        center=center,
        test=test,
        correction=correction,
        level=level,
        seed=seed,
    )
    table = _with_seed_notes(table, excluded, seed_warnings)
    figures = _figures(table, done, opened, by=by, level=level, seed=seed) if plots else ()
    return Report(
        experiment=experiment,
        table=table,
        runs=done,
        excluded=excluded,
        figures=figures,
        environment=environment_summary(list(done["dir"])),
        by=by,
        metric=metric,
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        store=_shown_store(opened),
        seed_warnings=seed_warnings,
    )


def _with_seed_notes(
    table: ResultsTable, excluded: tuple[tuple[str, str, str], ...], seed_warnings: tuple[str, ...]
) -> ResultsTable:
    """The methods paragraph says n counts distinct seeds and what was left out for it."""
    reproductions = sum(1 for _, _, why in excluded if why.startswith("reproduction of"))
    damaged = sum(1 for _, status, _ in excluded if status == "damaged")
    repeats = sum(1 for _, _, why in excluded if why.startswith("same config and seed"))
    notes = []
    if reproductions:
        notes.append(f"{reproductions} reproduction run(s) left out")
    if repeats:
        notes.append(
            f"{repeats} run(s) repeating a config and seed left out (latest completed run kept)"
        )
    if damaged:
        notes.append(f"{damaged} damaged run(s) skipped")
    methods = table.methods + " n counts distinct seeds: each config and seed once"
    methods += f" ({'; '.join(notes)})." if notes else "."
    return replace(table, methods=methods, warnings=(*seed_warnings, *table.warnings))


def _completed_runs(
    experiment: str, store: Store, *, reproductions: bool = False
) -> tuple[pd.DataFrame, tuple[tuple[str, str, str], ...], tuple[str, ...]]:
    """The completed runs of ``experiment``, one per config and seed; (id, status, why) for
    every other run; the warnings about repeated seeds."""
    from .._util.deps import require
    from ..store.frames import one_per_seed, runs_frame

    require("pandas", purpose="Loading runs as a DataFrame")
    skipped: list[DamagedRun] = []
    every = store.select(experiment=experiment, status=None, damaged=skipped)
    if not every:
        raise UsageError(
            f"No runs of experiment '{experiment}' in {store.root}. `replicator ls` lists them."
        )
    completed = [r for r in every if r.status == "completed"]
    selection = one_per_seed(completed, reproductions=reproductions)
    excluded = tuple(
        (r.id, r.status, "did not complete" if r.status != "running" else "still running")
        for r in every
        if r.status != "completed"
    ) + tuple((r.id, r.status, why) for r, why in selection.left_out)
    excluded += tuple((d.dir.name, "damaged", f"damaged: {d.problem}") for d in skipped)
    warnings = selection.warnings
    if skipped:
        warnings += (f"{len(skipped)} run(s) of '{experiment}' skipped as damaged (listed below).",)
    if not completed:
        raise UsageError(
            f"None of the {len(every)} runs of '{experiment}' completed "
            f"({', '.join(sorted({r.status for r in every}))}); nothing to report."
        )
    if not selection.kept:
        raise UsageError(
            f"Every completed run of '{experiment}' is a reproduction; report them with "
            "--include-reproductions."
        )
    return runs_frame(selection.kept), excluded, warnings


def _figures(
    table: ResultsTable,
    done: pd.DataFrame,
    store: Store,
    *,
    by: str | None,
    level: float,
    seed: int | None,
) -> tuple[Figure, ...]:
    """The interval plot of the table, then learning curves of the metric (or of two others)."""
    from ..store.frames import load_metrics
    from .plots import data_uri, plot_intervals, plot_learning_curves

    metric = table.metric
    figures = [Figure(f"{metric} per group", data_uri(plot_intervals(table)), table.caption)]
    history = load_metrics(runs=done, store=store)
    if history.empty:
        return tuple(figures)
    steps = history.groupby("key")["step"].nunique()
    curves = sorted(k for k, c in steps.items() if c > 1)  # one point is no curve
    keys = [metric] if metric in curves else curves[:2]
    for key in keys:
        fig = plot_learning_curves(history, done, key=key, by=by, level=level, seed=seed)
        figures.append(
            Figure(
                f"{key} over steps",
                data_uri(fig),
                f"Mean over seeds with a {int(level * 100)}% t-interval per step (band).",
            )
        )
    return tuple(figures)


def _shown_store(store: Store) -> str:
    """The store relative to its project (no home directory in a report that may be shared)."""
    try:
        return str(store.root.relative_to(store.project_root))
    except ValueError:
        return store.root.name


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:60rem;
color:#222;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid #e4e4e4;text-align:right}
th:first-child,td:first-child{text-align:left}caption{caption-side:top;text-align:left;color:#555;
font-size:.85rem;padding-bottom:.3rem}tr.baseline td{background:#f6f6f6}
.methods{background:#f3f7fb;border-left:3px solid #4a7ab5;padding:.6rem .8rem}
.warning{background:#fff5e6;border-left:3px solid #d08a1a;padding:.4rem .8rem}
figure{margin:1rem 0}figure img{max-width:100%;height:auto}figcaption{color:#555;font-size:.85rem}
code{font-size:.85rem}.muted{color:#777}
"""


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _runs_table(report: Report) -> str:
    df = report.runs
    mcol = column(df, report.metric, prefixes=("summary.",))
    cols = ["id", "name", "seed"]
    if report.by:
        cols.append(column(df, report.by, prefixes=("config.",)))
    cols += ["duration", mcol]
    head = "".join(
        f"<th>{html.escape(c.removeprefix('config.').removeprefix('summary.'))}"
        f"{' (s)' if c == 'duration' else ''}</th>"
        for c in cols
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row[c])}</td>" for c in cols) + "</tr>"
        for _, row in df.iterrows()
    )
    return f'<table class="runs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_html(report: Report) -> str:
    t = report.table
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # no network: forbid every fetch except inline data
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{e(report.experiment)}: {e(report.metric)} — replicator report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Experiment {e(report.experiment)}: {e(report.metric)}</h1>",
        f'<p class="muted">{len(report.runs)} completed run(s), {len(report.excluded)} excluded; '
        f"store <code>{e(report.store)}</code>; generated {e(report.generated)} by replicator "
        f"{e(__version__)}.</p>",
        "<h2>Methods</h2>",
        f'<p class="methods">{e(t.methods)} Runs that failed, crashed, were interrupted or are '
        "still running, reproductions and repeated runs of a config and seed are excluded from "
        "every number and listed below.</p>",
        "<h2>Results</h2>",
        to_html(t, methods=False),
    ]
    if report.figures:
        parts.append("<h2>Plots</h2>")
        for f in report.figures:
            parts.append(
                f'<figure><img src="{f.uri}" alt="{e(f.title)}"><figcaption>{e(f.title)}. '
                f"{e(f.caption)}</figcaption></figure>"
            )
    parts += ["<h2>Runs</h2>", _runs_table(report)]
    parts.append("<h2>Excluded runs</h2>")
    if report.excluded:
        parts.append(
            '<table class="excluded"><thead><tr><th>id</th><th>status</th><th>reason</th></tr></thead><tbody>'
        )
        parts += [
            f"<tr><td>{e(i)}</td><td>{e(s)}</td><td>{e(r)}</td></tr>" for i, s, r in report.excluded
        ]
        parts.append("</tbody></table>")
    else:
        parts.append("<p>None: every run of this experiment completed.</p>")
    parts.append("<h2>Environment</h2>")
    if report.environment:
        parts.append('<table class="environment"><tbody>')
        parts += [f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in report.environment]
        parts.append("</tbody></table>")
    else:
        parts.append("<p>No environment.json or hardware.json in these runs.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_report(report: Report, format: str = "html") -> str:
    """The report as ``html`` (the whole page) or the results table as ``md``, ``latex``, ``csv``."""
    if format == "html":
        return render_html(report)
    if format == "md":
        return to_markdown(report.table)
    if format == "latex":
        return to_latex(report.table)
    if format == "csv":
        return to_csv(report.table)
    raise UsageError(f"format must be one of {', '.join(FORMATS)}; got {format!r}.")


def write_report(
    experiment: str, path: str | os.PathLike[str], *, format: str = "html", **options: Any
) -> Path:
    """Build the report of ``experiment`` and write it to ``path`` atomically."""
    report = build_report(experiment, plots=format == "html", **options)
    return atomic_write(Path(path), render_report(report, format))
