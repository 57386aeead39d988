"""``replicator notebook run``: execute a parameterised notebook (papermill) and record it as a run."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["notebook_group"]


@click.group("notebook")
def notebook_group() -> None:
    """Run parameterised notebooks and record them like runs.

    \b
    Example:
      replicator notebook run analysis.ipynb -p lr=0.01 -p model=mlp -o executed.ipynb
    """


@notebook_group.command("run")
@click.argument("notebook", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-p",
    "--parameter",
    "parameters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Notebook parameter; the value is parsed as YAML (0.01, true, [1, 2], text).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the executed notebook here (it is always kept in the run).",
)
@click.option("--experiment", help="Experiment name (default: the notebook's name).")
@click.option("--name", help="Run name (default: the notebook's name).")
@click.option("--seed", type=int, help="Seed of the run (default: a 'seed' parameter, else drawn).")
@click.option("--kernel", help="Jupyter kernel name (default: the notebook's own).")
@click.option("--json", "as_json", is_flag=True, help="Print the run id and paths as JSON.")
def run_notebook_command(
    notebook: Path,
    parameters: tuple[str, ...],
    output: Path | None,
    experiment: str | None,
    name: str | None,
    seed: int | None,
    kernel: str | None,
    as_json: bool,
) -> None:
    """Execute NOTEBOOK with papermill and record it as a run.

    The parameters become the run's config; the run records the seed, environment and code
    snapshot like any run, keeps the executed notebook as notebook.ipynb, and is listed by
    `replicator ls`. A notebook calling replicator.start() logs into this run.

    \b
    Examples:
      replicator notebook run analysis.ipynb -p lr=0.01 -p model=mlp
      replicator notebook run sweep.ipynb -p seeds=[0,1,2] --experiment study -o out.ipynb
    """
    from ..report.notebook import parse_parameters, run_notebook

    result = run_notebook(
        notebook,
        parameters=parse_parameters(parameters),
        output=output,
        experiment=experiment,
        name=name,
        seed=seed,
        kernel=kernel,
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "id": result.run_id,
                    "dir": str(result.run_dir),
                    "executed": str(result.executed),
                    "output": str(result.output) if result.output else None,
                    "status": result.status,
                    "parameters": result.parameters,
                },
                indent=2,
                default=str,
            )
        )
        return
    click.echo(f"Run {result.run_id} completed: {result.executed}")
    if result.output:
        click.echo(f"Executed notebook also written to {result.output}")
