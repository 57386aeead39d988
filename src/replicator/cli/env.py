"""``replicator env``: export a run's environment, diff two runs' environments, check the current one."""

from __future__ import annotations

import json
import sys

import click

from ..environment.export import FORMATS


@click.group("env")
def env_group() -> None:
    """Export, compare and check the software environment runs recorded.

    \b
    Example:
      replicator env export last --format requirements -o env/
      replicator env diff RUN_A RUN_B
      replicator env check last
    """


@env_group.command("export")
@click.argument("run")
@click.option(
    "--format",
    "format_",
    type=click.Choice(FORMATS),
    default="requirements",
    show_default=True,
    help="requirements.txt, conda environment.yml, Dockerfile, Apptainer .def or .binder/.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Directory to write the files into (default: print them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was exported as JSON.")
def export_command(run: str, format_: str, output: str | None, as_json: bool) -> None:
    """Write a run's environment as installable files, pins and origins kept.

    Exit code 1 when a generated file fails its syntax check.

    \b
    Example:
      replicator env export last > requirements.txt
      replicator env export last --format dockerfile -o docker/
      replicator env export 20261126-141503-7f3a --format repo2docker -o .
    """
    from ..environment.export import export_environment
    from ..store import Store

    result = export_environment(Store.open().resolve(run), format=format_, output=output)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    elif output is None:
        for name, text in result.files.items():
            if len(result.files) > 1:
                click.echo(f"# ----- {name}")
            click.echo(text, nl=False)
    else:
        for path in result.written:
            click.echo(f"wrote {path}")
    if not as_json:
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
        for problem in result.problems:
            click.secho(f"problem: {problem}", err=True, fg="red")
    if result.problems:
        sys.exit(1)


def _print_diff(result: object, as_json: bool, max_rank: int) -> None:
    from ..compare.environment import EnvDiff, format_env_diff

    assert isinstance(result, EnvDiff)
    if as_json:
        data = result.as_dict()
        data["differences"] = [d for d in data["differences"] if d["rank"] <= max_rank]
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        for line in format_env_diff(result, max_rank=max_rank):
            click.echo(line)


RANK_OPTION = click.option(
    "--max-rank",
    type=click.IntRange(1, 7),
    default=7,
    show_default=True,
    help="Show differences down to this rank (1 matters most, 7 is everything).",
)


@env_group.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@RANK_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def diff_command(run_a: str, run_b: str, max_rank: int, as_json: bool) -> None:
    """Environment differences between two runs, most likely to change numbers first.

    Ranks: 1 packages missing or from another origin, 2 Python minor version,
    3 numeric libraries and CUDA builds, 4 BLAS/CPU/threads, 5 GPU and driver,
    6 variables of numeric and ML libraries (TORCH_*, TF_*, CUBLAS_*...), 7 the rest
    (incl. other variables the user set).

    \b
    Example:
      replicator env diff 20261126-141503-7f3a last
      replicator env diff RUN_A RUN_B --max-rank 3 --json
    """
    from ..compare.environment import diff_run_environments
    from ..store import Store

    store = Store.open()
    _print_diff(
        diff_run_environments(store.resolve(run_a), store.resolve(run_b)), as_json, max_rank
    )


@env_group.command("check")
@click.argument("run")
@click.option(
    "--python",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Interpreter to check (default: the one running replicator).",
)
@RANK_OPTION
@click.option(
    "--fail-rank",
    type=click.IntRange(1, 7),
    default=3,
    show_default=True,
    help="Exit 1 when a difference of this rank or a more important one exists.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def check_command(
    run: str, python: str | None, max_rank: int, fail_rank: int, as_json: bool
) -> None:
    """Compare the current environment with the one a run recorded.

    Exit code 1 when a difference of rank --fail-rank (default 3) or lower exists.

    \b
    Example:
      replicator env check last
      replicator env check last --python .venv/bin/python --json
    """
    from ..compare.environment import check_environment
    from ..store import Store

    result = check_environment(Store.open().resolve(run), python=python)
    _print_diff(result, as_json, max_rank)
    if result.within(fail_rank):
        sys.exit(1)
