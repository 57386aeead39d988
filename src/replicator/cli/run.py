"""``replicator run``: run a command and record it (one run per seed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..mirror.plan import parse_mirror
from ..record.launch import LaunchResult, RunSpec, launch
from ..store.settings import parse_size

RUN_EPILOG = """\b
Examples:
  replicator run -c configs/mlp.yaml --set optim.lr=0.01 -- python train.py
  replicator run --seeds 5 --experiment mlp -- python train.py
  replicator run --resume 20261126-141503-7f3a      (re-runs the recorded command)
  replicator run --metric-pattern 'step (?P<step>\\d+) \\| loss (?P<loss>[0-9.e+-]+)' -- python old.py
  replicator run --seeds 3 -- python makemore.py --seed {seed} --out {run_dir}/model.pt

The child gets REPLICATOR_RUN_DIR, REPLICATOR_SEED and PYTHONHASHSEED in its environment; a script
that calls replicator.load_config()/replicator.start() joins the run. A script that does not (an
argparse script) gets them through placeholders in the command, substituted per run: {seed},
{run_dir}, {run_id} and {config.KEY.PATH} (e.g. {config.optim.lr}); other braces pass unchanged,
and {{seed}} passes the text {seed}.
Without either, the run ends with a warning that the seed may not have reached the script.
Exit code: the command's own for one run; for several seeds 0 when all completed, 1 otherwise; 2
for a usage error.
"""


class _Size(click.ParamType):
    """A size in bytes: 5000, 200k, 5MiB, 1.5GB (binary units); 0 for no limit."""

    name = "size"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        if value is None or isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SIZE = _Size()


@click.command("run", epilog=RUN_EPILOG, context_settings={"ignore_unknown_options": False})
@click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file."
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value (a.b=1, +a.new=1 to add, ~a.b to delete). Repeatable.",
)
@click.option("--seed", type=int, help="Seed of the run (default: drawn and recorded).")
@click.option("--seeds", type=int, help="Run N times with N seeds drawn once from a recorded root.")
@click.option(
    "--seed-root", type=int, help="Root of the --seeds draw, to draw the same seeds again."
)
@click.option("--experiment", "-e", help="Experiment name (default: the config file's name).")
@click.option("--name", "-n", help="A name for the run.")
@click.option(
    "--outputs",
    "-o",
    multiple=True,
    metavar="PATH",
    help="Output file or folder to record with its hash. Repeatable. Default: detect changes.",
)
@click.option("--metric-pattern", help="Regex with a 'step' group and one named group per metric.")
@click.option(
    "--deterministic",
    is_flag=True,
    help="Deterministic mode: CUBLAS_WORKSPACE_CONFIG set before start, torch determinism flags.",
)
@click.option(
    "--resume",
    metavar="RUN",
    help="Continue RUN's record (same seed and config); the script restores its checkpoint.",
)
@click.option(
    "--resume-completed",
    is_flag=True,
    help="With --resume: continue a run that completed (its record is extended).",
)
@click.option(
    "--snapshot-max-size",
    "snapshot_max_size",
    type=SIZE,
    metavar="SIZE",
    help="Untracked files larger than this stay out of the code snapshot (5MiB, 200k; 0: no "
    "limit). Default: snapshot_max_size in replicator.yaml, else 5MiB.",
)
@click.option(
    "--tensorboard-dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Import TensorBoard scalars only from event files under this folder (default: any "
    "written under the working directory during the run).",
)
@click.option(
    "--mirror",
    "mirror",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Mirror the run to tensorboard, mlflow, wandb, comet, neptune or visdom (options from "
    "'mirror:' in replicator.yaml; 'none' for none). Default: the sinks of replicator.yaml.",
)
@click.argument("command", nargs=-1, required=False, type=click.UNPROCESSED)
@click.pass_context
def run_command(
    ctx: click.Context,
    config_path: str | None,
    overrides: tuple[str, ...],
    seed: int | None,
    seeds: int | None,
    seed_root: int | None,
    experiment: str | None,
    name: str | None,
    outputs: tuple[str, ...],
    metric_pattern: str | None,
    deterministic: bool,
    resume: str | None,
    resume_completed: bool,
    snapshot_max_size: int | None,
    tensorboard_dir: str | None,
    mirror: tuple[str, ...],
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as a child process and record everything needed to run it again."""
    from ..sweep.spec import refuse_sweep_override

    for text in overrides:  # a=1,2 is a sweep: point at `replicator sweep`
        refuse_sweep_override(text)
    spec = RunSpec(
        command=command,
        config_path=config_path,
        overrides=overrides,
        seed=seed,
        seeds=seeds,
        seed_root=seed_root,
        experiment=experiment,
        name=name,
        outputs=outputs,
        metric_pattern=metric_pattern,
        deterministic=deterministic,
        resume=resume,
        resume_completed=resume_completed,
        snapshot_max_size=snapshot_max_size,
        tensorboard_dir=tensorboard_dir,
        mirror=parse_mirror(",".join(mirror), where="--mirror") if mirror else None,
    )
    total = seeds or 1

    def on_start(run_id: str, run_dir: Path, run_seed: int) -> None:
        count = f" [{on_start.index}/{total}]" if total > 1 else ""  # type: ignore[attr-defined]
        on_start.index += 1  # type: ignore[attr-defined]
        click.secho(
            f"replicator: run {run_id}{count} seed={run_seed} -> {run_dir}", err=True, fg="cyan"
        )

    on_start.index = 1  # type: ignore[attr-defined]

    def on_end(result: LaunchResult) -> None:
        color = "green" if result.status == "completed" else "red"
        cause = f": {result.error}" if result.error else ""
        click.secho(
            f"replicator: run {result.run_id} {result.status} (exit code {result.exit_code}){cause}",
            err=True,
            fg=color,
        )

    def on_warning(message: str) -> None:
        click.secho(f"replicator: warning: {message}", err=True, fg="yellow")

    results = launch(spec, on_start=on_start, on_end=on_end, on_warning=on_warning)
    if len(results) < total:
        click.secho(
            f"replicator: sweep stopped after {len(results)} of {total} runs (interrupted)",
            err=True,
            fg="yellow",
        )
    if total == 1:
        code = results[0].exit_code or 0
        if results[0].status == "interrupted" and code >= 0:
            code = code or 130
        if results[0].status == "failed" and code == 0:  # the command succeeded, the record not
            code = 1
        sys.exit(code if code >= 0 else 128 - code)
    sys.exit(0 if all(r.status == "completed" for r in results) and len(results) == total else 1)
