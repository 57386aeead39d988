"""``replicator ls``, ``show``, ``diff`` and ``index``: reading the store."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

from .._util.format import format_size
from .._util.io import read_json
from ..checkpoints.manager import describe_checkpoints
from ..compare.runs import diff_runs
from ..config import flatten
from ..store import RunRecord, Store, read_part
from ..store.defects import known_defects
from ..store.metrics import iter_jsonl, metric_ranks, read_metrics
from .mirror import show_mirrors


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _warn_problems(store: Store) -> None:
    for problem in store.problems:
        click.secho(f"warning: skipped {problem}", err=True, fg="yellow")


@click.command(
    "ls",
    epilog="""\b
Examples:
  replicator ls
  replicator ls --experiment mlp --where 'config.optim.lr < 0.1 and summary.test_acc > 0.9'
  replicator ls --status crashed --json
""",
)
@click.option("--experiment", "-e", help="Only runs of this experiment.")
@click.option(
    "--status",
    type=click.Choice(["running", "completed", "failed", "interrupted", "crashed"]),
    help="Only runs with this status.",
)
@click.option(
    "--where", help="Filter on config.*, summary.*, seed, status, name (a Python-like expression)."
)
@click.option("--limit", type=int, default=None, help="Only the N most recent runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.option("--remote", help="List the runs of this remote store (a name, URL or path) instead.")
def ls_command(
    experiment: str | None,
    status: str | None,
    where: str | None,
    limit: int | None,
    as_json: bool,
    remote: str | None = None,
) -> None:
    """List recorded runs, oldest first."""
    store = Store.open()
    if remote is not None:
        from ..remote import list_remote

        runs = list_remote(remote, store=store, experiment=experiment, status=status, where=where)
    else:
        runs = store.select(experiment=experiment, status=status, where=where)
    if limit is not None:
        runs = runs[-limit:] if limit > 0 else []
    _warn_problems(store)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in runs], indent=2, default=str))
        return
    if not runs:
        click.echo(
            f"No runs in {_shown_remote(remote) if remote else store.root}"
            + (" match the filters." if (experiment or status or where) else ".")
        )
        if where:
            from ..store.query import missing_paths

            for path in missing_paths(where, [r.as_dict() for r in store.records()]):
                click.secho(f"warning: no run has '{path}' (a typo?)", err=True, fg="yellow")
        return
    rows = [["ID", "EXPERIMENT", "NAME", "STATUS", "SEED", "STARTED", "DURATION", "METRICS"]]
    for r in runs:
        metrics = ", ".join(f"{k}={_fmt_value(v)}" for k, v in list(r.summary.items())[:3])
        rows.append(
            [
                r.id,
                r.experiment,
                r.name or "-",
                r.status,
                str(r.seed if r.seed is not None else "-"),
                _fmt_time(r.started),
                _fmt_duration(r.duration),
                metrics or "-",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


def _shown_remote(remote: str) -> str:
    """A remote as messages show it: credentials in its URL removed."""
    from ..redact import redact_url

    return redact_url(remote)


def _section(title: str) -> None:
    click.secho(f"\n{title}", bold=True)


def _kv(key: str, value: Any, indent: int = 2) -> None:
    click.echo(f"{' ' * indent}{key + ':':<22} {value}")


def run_details(record: RunRecord) -> dict[str, Any]:
    """Everything recorded for a run, as one JSON-ready dict (``show --json``)."""
    d = record.dir
    return {
        "run": {**record.meta, "config": record.config},
        "status_history": list(iter_jsonl(d / "status.jsonl")),
        "summary": record.summary,
        "code": read_part(d, "code.json"),
        "environment": read_part(d, "environment.json"),
        "hardware": read_part(d, "hardware.json"),
        "seeding": read_part(d, "seeding.json"),
        "outputs": read_part(d, "outputs.json"),
        "metrics": _metric_overview(d),
        "metric_ranks": metric_ranks(d / "metrics.jsonl"),
        "known_defects": [asdict(defect) for defect in known_defects(record)],
        "checkpoints": describe_checkpoints(d),
        "files": sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()),
    }


def _metric_overview(run_dir: Any) -> dict[str, dict[str, Any]]:
    """Per key: the points recorded, the lowest and highest step, the last value."""
    overview: dict[str, dict[str, Any]] = {}
    for entry in read_metrics(run_dir / "metrics.jsonl"):
        step = entry.get("step")
        item = overview.setdefault(
            entry["key"], {"points": 0, "first_step": step, "last_step": step}
        )
        item["points"] += 1
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            if not isinstance(item["first_step"], (int, float)) or step < item["first_step"]:
                item["first_step"] = step
            if not isinstance(item["last_step"], (int, float)) or step > item["last_step"]:
                item["last_step"] = step
        item["last"] = entry.get("value")
        source = entry.get("source")
        if source is not None:  # parsed from the output, or imported from another tool's files
            item.setdefault("sources", [])
            if source not in item["sources"]:
                item["sources"].append(source)
    return overview


@click.command(
    "show",
    epilog="""\b
Examples:
  replicator show 20261126-141503-7f3a
  replicator show last --json
""",
)
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print everything recorded as JSON.")
def show_command(run: str, as_json: bool) -> None:
    """Show everything recorded for RUN (an id, a unique prefix, a name, or 'last')."""
    store = Store.open()
    record = store.get(run)
    details = run_details(record)
    if as_json:
        click.echo(json.dumps(details, indent=2, default=str))
        return
    for show_section in _SHOW_SECTIONS:
        show_section(record, details)


def _status_text(record: RunRecord) -> str:
    meta = record.meta
    status = record.status + (
        f" (exit code {meta.get('exit_code')})" if meta.get("exit_code") is not None else ""
    )
    if meta.get("error"):
        status += f": {meta['error']}"
    if meta.get("crash_detected"):
        status += f" ({meta['crash_detected']})"
    return status


def _seed_text(record: RunRecord) -> str:
    meta = record.meta
    seeding = meta.get("seeding") or {}
    seed_text = f"{record.seed} ({seeding.get('source', '?')}"
    if seeding.get("root"):
        seed_text += f", root {seeding['root']}"
    if seeding.get("sweep"):
        seed_text += f", sweep {seeding['sweep']} #{seeding.get('index')}"
    return seed_text + (", deterministic" if meta.get("deterministic") else "") + ")"


def _reproduction_text(record: RunRecord) -> str:
    """The run a reproduction reproduces, and its verdict (verdict.json) once it has one."""
    text = str(record.meta["reproduction_of"])
    try:
        verdict = read_json(record.dir / "verdict.json")
    except (OSError, ValueError):
        return f"{text} (no verdict recorded)"
    if not isinstance(verdict, dict):
        return f"{text} (verdict.json unreadable)"
    text += f" (verdict: {verdict.get('verdict')}, --env {verdict.get('env')})"
    if verdict.get("decided_by"):
        text += f"; decided by {verdict['decided_by']}"
    return text


def _checkout_text(record: RunRecord, path: Any) -> Any:
    """A reproduction's folder under its temporary checkout is named as such once removed."""
    if not path or not record.meta.get("reproduction_of") or os.path.exists(str(path)):
        return path
    return f"{path} (the reproduction's temporary checkout, removed; reproduce --keep keeps it)"


def _show_overview(record: RunRecord, details: dict[str, Any]) -> None:
    meta = record.meta
    click.secho(f"Run {record.id}", bold=True)
    _kv("experiment", record.experiment)
    if record.name:
        _kv("name", record.name)
    _kv("status", _status_text(record))
    if meta.get("reproduction_of"):
        _kv("reproduction of", _reproduction_text(record))
    _kv("seed", _seed_text(record))
    _kv("command", " ".join(meta.get("command") or []))
    if meta.get("command_run") and meta["command_run"] != meta.get("command"):
        _kv("command run", " ".join(meta["command_run"]))
    _kv("working directory", _checkout_text(record, meta.get("cwd")))
    _kv("host / user", f"{meta.get('host')} / {meta.get('user')}")
    ranks = (meta.get("distributed") or {}).get("ranks") or {}
    if ranks:
        states = ", ".join(f"{r}: {info.get('status', '?')}" for r, info in ranks.items())
        size = meta["distributed"].get("world_size")
        _kv("ranks", f"{len(ranks)} of world size {size} ({states}); metrics shown: rank 0")
    _kv("started", _fmt_time(record.started))
    _kv("ended", _fmt_time(record.ended))
    _kv("duration", _fmt_duration(record.duration))
    _kv("directory", record.dir)
    history = details["status_history"]
    if len(history) > 1:
        _kv("status history", " -> ".join(h.get("status", "?") for h in history))
    for resume in meta.get("resumes") or ():
        if resume.get("command_run"):
            _kv(f"resume {resume.get('session')}", " ".join(resume["command_run"]))
    for warning in [meta.get("seed_warning")] + [
        r.get("seed_warning") for r in meta.get("resumes") or ()
    ]:
        if warning:
            _kv("warning", warning)
    for defect in details["known_defects"]:
        click.secho(f"  warning: {defect['message']}", fg="yellow")


def _show_config(record: RunRecord, details: dict[str, Any]) -> None:
    config_hash = record.meta.get("config_hash")
    _section("Config" + (f" (hash {str(config_hash)[:12]})" if config_hash else ""))
    flat = flatten(record.config)
    for key, value in flat.items():
        _kv(key, value)
    if not flat:
        click.echo("  (none)")


def _show_code(record: RunRecord, details: dict[str, Any]) -> None:
    _section("Code")
    code = details["code"]
    if code.get("repo"):
        _kv("repository", _checkout_text(record, code["repo"]))
        _kv("commit", f"{code.get('commit')} ({code.get('branch') or 'detached'})")
        if code.get("remote"):
            _kv("remote", code["remote"])
        dirty = "yes" if code.get("dirty") else "no"
        if code.get("dirty"):
            dirty += f" ({code.get('changed_files', 0)} changed, {code.get('untracked_files', 0)} untracked files)"
        _kv("uncommitted changes", dirty)
        _kv("snapshot", f"{code.get('snapshot')} ({code.get('snapshot_ref')})")
    if code.get("note"):
        _kv("note", code["note"])


def _show_packages(packages: dict[str, Any]) -> None:
    special = {k: v for k, v in packages.items() if v.get("origin") != "index"}
    _kv("packages", f"{len(packages)} ({len(special)} not from an index)")
    for name, info in special.items():
        git = info.get("git") or {}
        extra = (
            f" @ {str(git.get('commit'))[:10]}{' dirty' if git.get('dirty') else ''}" if git else ""
        )
        _kv(
            f"  {name}",
            f"{info.get('version')} {info.get('origin')} {info.get('path') or info.get('url') or ''}{extra}",
            2,
        )


def _show_environment(env: dict[str, Any]) -> None:
    py = env.get("python", {})
    _kv("python", f"{str(py.get('version', '?')).split()[0]} ({py.get('executable')})")
    if py.get("found_by"):
        _kv("interpreter found by", py["found_by"])
    osf = env.get("os", {})
    _kv(
        "os",
        f"{osf.get('distribution') or osf.get('system')} kernel {osf.get('release')} {osf.get('libc') or ''}".strip(),
    )
    _show_packages(env.get("packages", {}))
    torch = env.get("torch")
    if torch:
        _kv(
            "torch build",
            f"{torch.get('version')} ({'CUDA ' + str(torch['cuda']) if torch.get('cuda') else 'no CUDA'})",
        )
    for name, digest in (env.get("lock_files") or {}).items():
        _kv(f"dependency file {name}", digest[:16])
    for name, value in (env.get("relevant_env") or {}).items():
        _kv(name, value)


def _show_hardware(hw: dict[str, Any]) -> None:
    cpu = hw.get("cpu", {})
    _kv("cpu", f"{cpu.get('model')} ({cpu.get('logical_cores')} logical cores)")
    if cpu.get("numeric_flags"):
        _kv("instruction sets", " ".join(cpu["numeric_flags"]))
    mem = (hw.get("memory") or {}).get("total_bytes")
    if mem:
        _kv("memory", f"{mem / 2**30:.1f} GiB")
    gpus = (hw.get("gpu") or {}).get("devices") or []
    _kv("gpus", ", ".join(f"{g.get('name')} ({g.get('memory_mib')} MiB)" for g in gpus) or "none")
    if gpus:
        _kv("driver", hw["gpu"].get("driver"))


def _show_metrics(record: RunRecord, details: dict[str, Any]) -> None:
    _section("Metrics")
    overview = details["metrics"]
    # A run that died before writing a summary (recorded by 0.1.0) still has its history.
    summary = record.summary or {key: hist.get("last") for key, hist in overview.items()}
    for key, value in summary.items():
        hist = overview.get(key)
        extra = ""
        if hist:
            points = f"{hist['points']} point{'' if hist['points'] == 1 else 's'}"
            steps = (
                f"step {hist['first_step']}"
                if hist["first_step"] == hist["last_step"]
                else f"steps {hist['first_step']}..{hist['last_step']}"
            )
            sources = f", from {' and '.join(hist['sources'])}" if hist.get("sources") else ""
            extra = f"  ({points}, {steps}{sources})"
        _kv(key, f"{_fmt_value(value)}{extra}")
    if not summary:
        click.echo("  (none)")


def _show_data(record: RunRecord, details: dict[str, Any]) -> None:
    datasets = record.meta.get("data") or {}
    if not (datasets or record.meta.get("data_error")):
        return
    from ..data import format_record

    _section("Data")
    for name, entry in datasets.items():
        click.echo(f"  {format_record(name, entry)}")
    if record.meta.get("data_error"):
        _kv("error", record.meta["data_error"])


def _show_checkpoints(checkpoints: list[dict[str, Any]]) -> None:
    for c in checkpoints:
        metrics = ", ".join(f"{k}={_fmt_value(v)}" for k, v in (c.get("metrics") or {}).items())
        size = format_size(int(c.get("size") or 0))
        damaged = f"  DAMAGED: {c['damaged']}" if c.get("damaged") else ""
        _kv(
            f"step {c.get('step')}",
            f"{'/'.join(c.get('roles') or [])}  {size}  {metrics}  {c.get('file')}{damaged}",
        )


def _show_outputs(record: RunRecord, details: dict[str, Any]) -> None:
    outputs = details["outputs"]
    if not (outputs.get("files") or outputs.get("missing") or outputs.get("ignored")):
        return
    _section(f"Outputs ({_OUTPUT_MODES.get(str(outputs.get('mode')), outputs.get('mode'))})")
    for f in outputs.get("files", [])[:50]:
        how = _OUTPUT_STATUS.get(str(f.get("status")), f.get("status", ""))
        _kv(f["path"], f"{f.get('size', '?')} bytes blake3:{str(f.get('blake3', ''))[:16]} {how}")
    if len(outputs.get("files", [])) > 50:
        click.echo(f"  ... {len(outputs['files']) - 50} more")
    for m in outputs.get("missing", []):
        _kv(m, "declared but missing")
    for item in outputs.get("ignored", []):
        _kv(item.get("path"), str(item.get("reason")))


_OUTPUT_MODES = {
    "declared": "declared with --outputs or the config's outputs",
    "detected": "detected: files the command created or changed",
}
_OUTPUT_STATUS = {"created": "detected: new file", "modified": "detected: changed file"}


def _part_section(
    key: str, title: str, show: Callable[[Any], None]
) -> Callable[[RunRecord, dict[str, Any]], None]:
    """A section that shows ``run_details(record)[key]`` under ``title``, or nothing if empty."""

    def show_section(record: RunRecord, details: dict[str, Any]) -> None:
        part = details[key]
        if part:
            _section(title)
            show(part)

    return show_section


# `show` prints these sections in this order; each takes the record and run_details(record).
_SHOW_SECTIONS: tuple[Callable[[RunRecord, dict[str, Any]], None], ...] = (
    _show_overview,
    _show_config,
    _show_code,
    _part_section("environment", "Environment", _show_environment),
    _part_section("hardware", "Hardware", _show_hardware),
    _show_metrics,
    _show_data,
    _part_section("checkpoints", "Checkpoints", _show_checkpoints),
    _show_outputs,
    show_mirrors,
)


@click.command(
    "diff",
    epilog="""\b
Examples:
  replicator diff 20261126-141503-7f3a 20261126-142210-01bc
  replicator diff last~ last --json
""",
)
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def diff_command(run_a: str, run_b: str, as_json: bool) -> None:
    """Show what differs between two runs, most likely cause of different results first."""
    store = Store.open()
    a, b = store.get(run_a), store.get(run_b)
    result = diff_runs(a, b)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, default=str))
        return
    click.secho(f"--- {a.id}\n+++ {b.id}", bold=True)
    if not result.differences:
        click.echo(
            "No differences in environment, hardware, seeds, config, data, code, metrics "
            "or output hashes."
        )
        return
    section = None
    for d in result.differences:
        if d.section != section:
            section = d.section
            click.secho(f"\n{section}", bold=True)
        click.echo(f"  {d.key}: {_fmt_value(d.a)} -> {_fmt_value(d.b)}")


@click.group("index")
def index_group() -> None:
    """Manage the SQLite index (a cache of the run directories).

    \b
    Example:
      replicator index rebuild
    """


@index_group.command("rebuild")
def index_rebuild() -> None:
    """Delete the index and recreate it from the run directories.

    \b
    Example:
      replicator index rebuild
    """
    store = Store.open()
    count = store.rebuild_index()
    _warn_problems(store)
    click.echo(
        f"Indexed {count} runs from {store.runs_dir}"
        + (f" ({len(store.problems)} skipped)" if store.problems else "")
    )
    if store.problems:
        sys.exit(1)
