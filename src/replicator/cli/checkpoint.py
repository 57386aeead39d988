"""``replicator checkpoint``: list a run's checkpoints and re-hash them against the manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from .._util.format import format_size


def _directory(run: str) -> Path:
    """A run id (or prefix) in the store, a run directory, or a checkpoint directory."""
    path = Path(run)
    if (path / "manifest.json").exists() or (path / "checkpoints").is_dir():
        return path
    from ..store import Store

    return Store.open().resolve(run)


def _size(n: int | None) -> str:
    return "?" if n is None else format_size(n)


@click.group("checkpoint")
def checkpoint_group() -> None:
    """List a run's checkpoints and check them against their manifest.

    \b
    Example:
      replicator checkpoint ls 20261126-141503-7f3a
      replicator checkpoint verify 20261126-141503-7f3a
    """


def _run_command(name: str, *, json_help: str) -> Callable[[Callable[..., None]], click.Command]:
    """A ``checkpoint`` subcommand of one argument, RUN, and a ``--json`` flag."""

    def decorate(f: Callable[..., None]) -> click.Command:
        f = click.option("--json", "as_json", is_flag=True, help=json_help)(f)
        return checkpoint_group.command(name)(click.argument("run")(f))

    return decorate


@_run_command("ls", json_help="Print the checkpoints as JSON.")
def ls_command(run: str, as_json: bool) -> None:
    """List the checkpoints of RUN: step, roles (latest, best1...), metrics, size.

    A file whose header or metadata is invalid is marked DAMAGED, with what is wrong.

    RUN is a run id (or a unique prefix), a run directory or a checkpoint directory.

    \b
    Example:
      replicator checkpoint ls 20261126-141503-7f3a
      replicator checkpoint ls runs/ckpt --json
    """
    from ..checkpoints.manager import describe_checkpoints

    directory = _directory(run)
    run_dir = directory.parent if (directory / "manifest.json").exists() else directory
    rows = describe_checkpoints(run_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo(f"No checkpoints in {run_dir}.")
        return
    for row in rows:
        metrics = ", ".join(
            f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in row["metrics"].items()
        )
        problem = "" if row["exists"] else "  MISSING"
        if row["damaged"]:
            problem = f"  DAMAGED: {row['damaged']}"
        click.echo(
            f"step {row['step']!s:>8}  {','.join(row['roles']):<14} {_size(row['size']):>9}  "
            f"{metrics}{problem}"
        )


@_run_command("verify", json_help="Print the report as JSON.")
def verify_command(run: str, as_json: bool) -> None:
    """Re-hash and read every checkpoint of RUN against its manifest; exit 1 if any fails.

    Each is ok, missing, mismatch (its hash differs) or damaged (it matches but is invalid).

    RUN is a run id (or a unique prefix), a run directory or a checkpoint directory.

    \b
    Example:
      replicator checkpoint verify 20261126-141503-7f3a
      replicator checkpoint verify 20261126-141503-7f3a --json
    """
    from ..checkpoints.manager import CheckpointManager

    report = CheckpointManager.open(_directory(run)).verify()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for r in report.results:
            click.echo(f"{r['status']:<9} step {r['step']!s:>8}  {r['file']}")
            if r.get("reason"):
                click.echo(f"          {r['reason']}")
        for name in report.orphans:
            click.echo(f"orphan    {name} (not in the manifest; removed at the next save)")
        ok = sum(r["status"] == "ok" for r in report.results)
        click.echo(f"{ok} of {len(report.results)} checkpoint(s) match the manifest.")
    if not report.ok:
        raise click.exceptions.Exit(1)
