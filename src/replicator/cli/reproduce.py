"""``replicator reproduce`` and ``replicator ci init``: re-run a recorded run and check it."""

from __future__ import annotations

import json
import sys
import time

import click


@click.command("reproduce")
@click.argument("run")
@click.option(
    "--env",
    "env_mode",
    type=click.Choice(["fresh", "current"]),
    default="fresh",
    show_default=True,
    help="fresh: a new virtual environment from the recorded packages; current: this one.",
)
@click.option("--rtol", type=float, default=0.0, show_default=True, help="Relative tolerance.")
@click.option("--atol", type=float, default=0.0, show_default=True, help="Absolute tolerance.")
@click.option(
    "--metrics",
    default=None,
    help="Comma-separated metric names (glob patterns) to compare; default: all. Without "
    "--outputs they also name the output files and checkpoints that decide.",
)
@click.option(
    "--outputs",
    default=None,
    help="Comma-separated glob patterns of the output files that decide the verdict (paths "
    "relative to the working directory, timestamped folders written <time>); default: every "
    "output but logs and config dumps.",
)
@click.option(
    "--installer",
    type=click.Choice(["uv", "pip"]),
    default=None,
    help="What builds the fresh environment; default: uv when available, else pip.",
)
@click.option("--keep", is_flag=True, help="Keep the checkout and the environment afterwards.")
@click.option(
    "--allow-data-change",
    is_flag=True,
    help="Run even when the recorded data changed (a warning instead of a refusal).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def reproduce_command(
    run: str,
    env_mode: str,
    rtol: float,
    atol: float,
    metrics: str | None,
    outputs: str | None,
    installer: str | None,
    keep: bool,
    allow_data_change: bool,
    as_json: bool,
) -> None:
    """Re-run a recorded run from its code snapshot and say whether it reproduced.

    Checks the host, checks out the run's snapshot in a temporary git worktree, builds a fresh
    environment with the recorded packages (uv when available), verifies the data, runs the
    recorded command with the recorded config, seed and variables as a new run, and compares
    every metric, history, output file and checkpoint. Output files are paired by their place
    in the run's output folder (timestamped folders such as Hydra's normalised); checkpoints
    whose bytes differ are compared by their tensors; logs and config dumps are reported but
    do not decide. The verdict names what decided it. Exit code 0 only when it reproduced.

    \b
    Example:
      replicator reproduce last
      replicator reproduce 20261126-141503-7f3a --rtol 1e-6 --metrics 'val_*,test_acc'
      replicator reproduce last --env current --json
      replicator reproduce last --outputs 'logs/train/runs/<time>/checkpoints/*.ckpt'
    """
    from .._util.progress import progress_bar
    from ..reproduce import format_verdict, reproduce
    from ..store import Store

    started = time.perf_counter()

    def on_stage(name: str, detail: str) -> None:
        if detail == "started":
            return
        click.echo(f"[{time.perf_counter() - started:6.1f}s] {name}: {detail}", err=True)

    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    files = [o.strip() for o in outputs.split(",") if o.strip()] if outputs else None
    with progress_bar("Reproducing", unit="stages", total=6) as bar:
        result = reproduce(
            run,
            store=Store.open(),
            env=env_mode,
            rtol=rtol,
            atol=atol,
            metrics=names,
            outputs=files,
            keep=keep,
            installer=installer,
            allow_data_change=allow_data_change,
            # the command's output goes to stderr when stdout carries JSON
            stdout=sys.stderr.buffer if as_json else None,
            on_stage=on_stage,
            progress=bar,
        )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        for line in format_verdict(result):
            if line.startswith("Verdict:"):
                click.secho(line, bold=True, fg="green" if result.reproduced else "red")
            else:
                click.echo(line)
    sys.exit(result.exit_code)


@click.group("ci")
def ci_group() -> None:
    """Continuous integration that reproduces a run on every push.

    \b
    Example:
      replicator ci init last
    """


@ci_group.command("init")
@click.argument("run")
@click.option("--python", default="3.11", show_default=True, help="Python version of the job.")
@click.option(
    "--store",
    default=".replicator",
    show_default=True,
    help="Where the job finds the run record (committed or restored).",
)
@click.option("--rtol", type=float, default=0.0, help="Relative tolerance for the job.")
@click.option("--atol", type=float, default=0.0, help="Absolute tolerance for the job.")
@click.option(
    "--install",
    default="pip install -e .",
    show_default=True,
    help="Shell command that installs the project in the job.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing workflow.")
def ci_init_command(
    run: str, python: str, store: str, rtol: float, atol: float, install: str, force: bool
) -> None:
    """Write .github/workflows/replicator-reproduce.yml, reproducing RUN on every push.

    \b
    Example:
      replicator ci init 20261126-141503-7f3a --rtol 1e-6
    """
    from ..reproduce.ci import write_ci_workflow
    from ..store import Store, find_project_root

    store_obj = Store.open()
    run_id = store_obj.resolve(run).name
    path = write_ci_workflow(
        run_id,
        root=find_project_root(),
        force=force,
        python=python,
        store=store,
        rtol=rtol,
        atol=atol,
        install=install,
    )
    click.echo(f"wrote {path} (reproduces run {run_id} on every push)")
