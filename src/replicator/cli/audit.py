"""``replicator audit``: find what makes a run non-repeatable, and name the cause."""

from __future__ import annotations

import json
from typing import Any

import click

AUDIT_EPILOG = """\b
Exit code: 0 when the runs agreed and no factor or finding was confirmed as a source; 1
otherwise; 2 for bad input (no command, a run that cannot be found, a command that fails in
every run). The audit's runs are recorded in the store under the experiment 'audit'.
"""


class _AuditCommand(click.Command):
    """Tells ``audit RUN`` from ``audit -- COMMAND``: click drops the ``--`` itself."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["audit_command_given"] = "--" in args
        return super().parse_args(ctx, args)


@click.command("audit", cls=_AuditCommand, epilog=AUDIT_EPILOG)
@click.option("--runs", type=int, default=2, show_default=True, help="Runs to compare.")
@click.option(
    "--max-steps",
    type=int,
    default=None,
    help="Compare only the first K points of each metric history (bound the command's own "
    "length with its options).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="The seed of every run (default 0; a recorded run: its seed).",
)
@click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file."
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override.")
@click.option("--metric-pattern", help="Regex with a 'step' group and one named group per metric.")
@click.option(
    "--factor",
    "factors",
    multiple=True,
    metavar="NAME",
    help="Re-run only this factor (hashseed, threads, cores, clock, entropy, completion, "
    "listing, deterministic). Repeatable. Default: all.",
)
@click.option("--jobs", type=int, default=None, help="Runs at a time (default: CPU count, <= 4).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (for CI).")
@click.argument("args", nargs=-1, required=False, type=click.UNPROCESSED)
@click.pass_context
def audit_command(
    ctx: click.Context,
    runs: int,
    max_steps: int | None,
    seed: int | None,
    config_path: str | None,
    overrides: tuple[str, ...],
    metric_pattern: str | None,
    factors: tuple[str, ...],
    jobs: int | None,
    as_json: bool,
    args: tuple[str, ...],
) -> None:
    """Run a command (or a recorded run's command) several times with the same seed, report the
    first step where the runs differ, and re-run it changing one factor at a time
    (PYTHONHASHSEED, threads, cores, clock, OS entropy, completion order, directory listing
    order, torch deterministic mode) to name what changes the result; the code is scanned for
    known sources too, each finding marked confirmed or not.

    \b
    Example:
      replicator audit -- python train.py --steps 50
      replicator audit --metric-pattern 'step (?P<step>\\d+) loss (?P<loss>\\S+)' -- python t.py
      replicator audit last --json
    """
    from ..audit import audit, format_audit
    from ..errors import UsageError

    command_given = ctx.meta.get("audit_command_given") or len(args) != 1
    target: Any = tuple(args) if command_given else args[0]
    if not args:
        raise UsageError(
            "Nothing to audit: give a run (replicator audit RUN) or a command after '--' "
            "(replicator audit -- python train.py)."
        )

    def progress(line: str) -> None:
        if not as_json:
            click.echo(f"replicator: {line}", err=True)

    report = audit(
        target,
        runs=runs,
        max_steps=max_steps,
        seed=seed,
        config_path=config_path,
        overrides=overrides,
        metric_pattern=metric_pattern,
        jobs=jobs,
        factors=factors or None,
        on_progress=progress,
    )
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        click.echo("\n".join(format_audit(report)))
    ctx.exit(report.exit_code)
