"""``replicator import``: runs from what other tools recorded (TensorBoard event files)."""

from __future__ import annotations

import json

import click


@click.group("import")
def import_group() -> None:
    """Create runs from the logs of other tools.

    \b
    Example:
      replicator import tensorboard runs/
      replicator import tensorboard lightning_logs/ --experiment baseline
    """


@import_group.command("tensorboard")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--experiment",
    default=None,
    help="The experiment to file the runs under (default: the directory's name).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the created runs as JSON.")
def tensorboard_command(directory: str, experiment: str | None, as_json: bool) -> None:
    """One completed run per folder of TensorBoard event files under DIRECTORY.

    Each run holds the folder's scalars as its metrics (step and wall time kept, with
    "source": "tensorboard"); its name is the folder relative to DIRECTORY. The code is not
    captured, except the commit and branch when DIRECTORY is in a git repository. A damaged
    event file is imported up to the damage, with a warning.

    \b
    Example:
      replicator import tensorboard runs/
      replicator show last
    """
    from ..record.tensorboard import import_tensorboard
    from ..store import Store

    runs = import_tensorboard(directory, store=Store.open(), experiment=experiment)
    if as_json:
        rows = [
            {"id": r.run_id, "dir": str(r.dir), "source": str(r.source), **r.imported.as_dict()}
            for r in runs
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for r in runs:
        keys = ", ".join(r.imported.keys) or "no scalars"
        click.echo(f"{r.run_id}  {r.source}  {r.imported.values} values ({keys})")
    click.echo(f"replicator: imported {len(runs)} run(s) from {directory}", err=True)
