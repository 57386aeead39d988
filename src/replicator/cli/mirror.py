"""``replicator mirror RUN --to NAME[,NAME]``: send a recorded run to the loggers, and the
``Mirrors`` section of ``replicator show``."""

from __future__ import annotations

from typing import Any

import click

from ..errors import UsageError
from ..mirror.base import sink_names
from ..mirror.session import mirror_recorded
from ..mirror.state import describe_mirrors
from ..store import RunRecord, Store

MIRROR_EPILOG = """\b
Examples:
  replicator mirror last --to mlflow
  replicator mirror 20261126-141503-7f3a --to tensorboard,wandb

Each sink goes on from where it stopped (mirrors.json in the run directory): a sink that was down
during the run gets the rest, a sink that never had the run gets all of it, one that has
everything is left as it is. Options come from 'mirror:' in replicator.yaml and from the run's
earlier mirroring; credentials from each tool's own places. Exit code 1 when a sink did not
receive everything (the reason is printed; run the command again later).
"""


@click.command("mirror", epilog=MIRROR_EPILOG)
@click.argument("run")
@click.option(
    "--to",
    "to",
    required=True,
    multiple=True,
    metavar="NAME[,NAME]",
    help="Sinks: tensorboard, mlflow, wandb, comet, neptune, visdom.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the sinks in all.",
)
def mirror_command(run: str, to: tuple[str, ...], timeout: float) -> None:
    """Send RUN (a recorded run) to the sinks named with --to."""
    store = Store.open()
    record = store.get(run)
    if record.status == "running":
        raise UsageError(
            f"Run {record.id} is still running; its recorder mirrors it. Send it once it ended."
        )
    names = sink_names(",".join(to))

    def on_warning(line: str) -> None:
        click.secho(f"replicator: warning: {line}", err=True, fg="yellow")

    state = mirror_recorded(
        record.dir,
        names,
        status=record.status,
        settings=store.settings.mirror,
        on_warning=on_warning,
        timeout=timeout,
    )
    failed = False
    for name in names:
        entry = state.get(name) or {}
        status = entry.get("status", "failed")
        failed = failed or status != "ok"
        click.echo(
            f"{name}: {status}, {entry.get('sent_points', 0)} points -> {entry.get('where') or '-'}"
        )
    if failed:
        raise SystemExit(1)


def show_mirrors(record: RunRecord, details: dict[str, Any]) -> None:
    """``replicator show``: which sinks received what."""
    lines = describe_mirrors(record.dir, run_id=record.id)
    if not lines:
        return
    click.secho("\nMirrors", bold=True)
    for line in lines:
        click.echo(f"  {line}")
