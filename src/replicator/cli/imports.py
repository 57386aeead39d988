"""``replicator import``: runs from what other tools recorded (TensorBoard event files, MLflow
stores, W&B run files)."""

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
      replicator import mlflow mlruns/
      replicator import wandb wandb/
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


def _tool_command(tool: str, directory: str, experiment: str | None, as_json: bool) -> None:
    from ..record.tool_imports import import_tool_directory
    from ..store import Store

    runs = import_tool_directory(tool, directory, store=Store.open(), experiment=experiment)
    if as_json:
        rows = [
            {
                "id": r.run_id,
                "dir": str(r.dir),
                "source": str(r.source),
                "tool_run": r.tool_run,
                **r.imported.as_dict(),
            }
            for r in runs
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for r in runs:
        keys = ", ".join(r.imported.keys) or "no scalars"
        click.echo(f"{r.run_id}  {r.tool_run}  {r.imported.values} values ({keys})")
    click.echo(f"replicator: imported {len(runs)} run(s) from {directory}", err=True)


@import_group.command("mlflow")
@click.argument("directory", type=click.Path(path_type=str))
@click.option(
    "--experiment",
    default=None,
    help="The experiment to file the runs under (default: each run's MLflow experiment).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the created runs as JSON.")
def mlflow_command(directory: str, experiment: str | None, as_json: bool) -> None:
    """One completed run per MLflow run found under DIRECTORY.

    DIRECTORY is a folder holding an MLflow file store (mlruns/) or an MLflow SQLite database
    (mlflow.db, MLflow 3's default), or the database file itself. Each run holds the MLflow
    run's metrics (step and wall time kept, with "source": "mlflow"), its params as config
    (secrets redacted), its name, status, start and end. MLflow itself is not needed. A damaged
    metric file or database is imported up to the damage, with a warning.

    \b
    Example:
      replicator import mlflow .            # ./mlflow.db or ./mlruns/
      replicator show last
    """
    _tool_command("mlflow", directory, experiment, as_json)


@import_group.command("wandb")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--experiment",
    default=None,
    help="The experiment to file the runs under (default: each run's W&B project).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the created runs as JSON.")
def wandb_command(directory: str, experiment: str | None, as_json: bool) -> None:
    """One run per W&B run file (wandb/*/run-*.wandb) under DIRECTORY.

    Each run holds what wandb.log wrote (step and wall time kept, with "source": "wandb"), the
    W&B config as config (secrets redacted), the project as experiment. Offline and online runs
    both leave these files. Reading them needs wandb: pip install 'replicator[wandb]'. A damaged
    file is imported up to the damage, with a warning.

    \b
    Example:
      replicator import wandb wandb/
      replicator show last
    """
    _tool_command("wandb", directory, experiment, as_json)
