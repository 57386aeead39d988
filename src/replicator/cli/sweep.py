"""``replicator sweep``: run a grid, a random search or an Optuna study as one run per job.

A thin shell over :mod:`replicator.sweep`: ``replicator sweep [OPTIONS] [KEY=VALUES...] --
COMMAND`` plans the sweep (every check first), then submits it; ``sweep status``, ``sweep
resume`` and ``sweep ls`` read and continue recorded sweeps.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, UsageError
from ..store import Store
from ..sweep.executors.base import JobResult, JobState, Resources
from ..sweep.record import JobStatus, SweepRecord, find_sweep, job_statuses, list_sweeps
from ..sweep.spec import OptunaSearch, parse_sweep
from ..sweep.submission import SweepRequest, TooManyJobsError, plan_sweep, resume, submit

__all__ = ["sweep_group"]

SWEEP_EPILOG = """\b
Examples:
  replicator sweep -c configs/mlp.yaml --set optim.lr=0.1,0.01 model=small,big --seeds 3 -j 2 \\
      -- python train.py
  replicator sweep --set layers='range(1,5)' -- python train.py
  replicator sweep --sample optim.lr='loguniform(1e-4,1e-1)' --sample bs='choice(32,64)' \\
      --trials 20 -j 4 -- python train.py
  replicator sweep --optuna --metric val_loss --direction minimize --trials 20 \\
      --sample optim.lr='loguniform(1e-4,1e-1)' -- python train.py
  replicator sweep status last
  replicator sweep resume last

Each job is one `replicator run` (its own process and run). The sweep is recorded under its
experiment (experiments/NAME/sweeps/ID.json). Exit code: 0 when every job completed, 1 otherwise,
2 for a usage error, 130 when interrupted.
"""

_LAUNCHER_KEYS = {
    "executor",
    "jobs",
    "partition",
    "time_min",
    "gpus",
    "cpus",
    "mem_gb",
    "ray_address",
}


class _SweepGroup(click.Group):
    """``sweep`` runs a sweep itself unless a subcommand is named; everything after ``--`` is
    the command, and bare ``KEY=VALUES`` words before it are ``--set`` overrides (so that
    ``--set a=1,2 b=x,y`` reads as Hydra's command line does)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            return super().parse_args(ctx, args)
        if "--" in args:
            cut = args.index("--")
            ctx.meta["sweep.command"] = tuple(args[cut + 1 :])
            args = args[:cut]
        takes_value = {
            name
            for param in self.params
            if isinstance(param, click.Option) and not param.is_flag
            for name in param.opts
        }
        rewritten: list[str] = []
        after_option = False
        for arg in args:
            if not after_option and not arg.startswith("-") and "=" in arg:
                rewritten += ["--set", arg]
            else:
                rewritten.append(arg)
            after_option = arg in takes_value
        return super().parse_args(ctx, rewritten)


@click.group(
    "sweep",
    cls=_SweepGroup,
    invoke_without_command=True,
    epilog=SWEEP_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file."
)
@click.option("--experiment", "-e", help="Experiment name (default: the config file's name).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUES",
    help="A grid axis in Hydra's syntax (a=1,2  a=range(1,5)  a=choice(x,y)) or a plain "
    "override for every job. Repeatable; bare KEY=VALUES words also count.",
)
@click.option(
    "--sample",
    "samples",
    multiple=True,
    metavar="KEY=DIST",
    help="Draw KEY from uniform(a,b), loguniform(a,b), intuniform(a,b) or choice(x,y,...) "
    "(random search, or Optuna's space). Repeatable.",
)
@click.option("--trials", type=int, help="Random draws (with --sample) or Optuna trials.")
@click.option("--optuna", "use_optuna", is_flag=True, help="Search with an Optuna study.")
@click.option("--metric", help="With --optuna: the logged metric the study optimises.")
@click.option(
    "--direction",
    type=click.Choice(["minimize", "maximize"]),
    default="minimize",
    show_default=True,
    help="With --optuna: minimise or maximise --metric.",
)
@click.option("--no-prune", is_flag=True, help="With --optuna: never stop a trial early.")
@click.option("--seeds", type=int, help="Run every point with N seeds (drawn from the root).")
@click.option("--seed-root", type=int, help="Root of the draw (seeds, samples), to repeat it.")
@click.option(
    "--executor",
    type=click.Choice(["local", "slurm", "ray"]),
    help="Where jobs run (default: 'executor' of the config's launcher: section, else local).",
)
@click.option("-j", "--jobs", type=int, help="Jobs at once (local; Slurm array parallelism).")
@click.option("--partition", help="Slurm partition.")
@click.option("--time", "time_min", type=int, metavar="MIN", help="Time limit of a job (minutes).")
@click.option("--gpus", type=int, help="GPUs per job.")
@click.option("--cpus", type=int, help="CPUs per job.")
@click.option("--mem", "mem_gb", type=float, metavar="GB", help="Memory per job (GB).")
@click.option("--ray-address", help="Address of the Ray cluster (default: start one locally).")
@click.option("--metric-pattern", help="Regex parsing metrics from each job's output.")
@click.option("--deterministic", is_flag=True, help="Each job in deterministic mode.")
@click.option("--yes", "-y", is_flag=True, help="Submit a sweep larger than sweep_max_jobs.")
@click.option("--dry-run", is_flag=True, help="List the jobs and stop (nothing is written).")
@click.pass_context
def sweep_group(ctx: click.Context, **options: Any) -> None:
    """Run COMMAND once per point of a grid, a random search or an Optuna study."""
    if ctx.invoked_subcommand is not None:
        return
    command = tuple(ctx.meta.get("sweep.command", ()))
    launcher = _launcher_section(options["config_path"])
    request = _request(options, command, launcher)
    store = Store.open()
    plan = _plan(request, store, confirmed=options["yes"])
    if options["dry_run"]:
        for point in plan.points:
            click.echo(f"{point.index}\tseed={point.seed}\t{' '.join(point.overrides)}")
        if not plan.points:
            click.echo(f"{plan.size} Optuna trials, asked one batch at a time.")
        return
    described = request.executor + (f" -j {options['jobs']}" if options["jobs"] else "")
    click.secho(
        f"replicator: sweep {plan.id}: {plan.size} jobs ({described}), "
        f"experiment {plan.experiment}",
        err=True,
        fg="cyan",
    )
    code = _submit_with_progress(plan, submit_fn=lambda cb: submit(plan, on_change=cb))
    sys.exit(code)


def _plan(request: SweepRequest, store: Store, *, confirmed: bool) -> Any:
    try:
        return plan_sweep(request, store=store, confirmed=confirmed)
    except TooManyJobsError as exc:
        if not sys.stdin.isatty():
            raise
        click.confirm(
            f"The sweep has {exc.size} jobs (more than {exc.limit}). Submit them?", abort=True
        )
        return plan_sweep(request, store=store, confirmed=True)


def _request(
    options: dict[str, Any], command: tuple[str, ...], launcher: dict[str, Any]
) -> SweepRequest:
    optuna = None
    if options["use_optuna"]:
        if not options["metric"]:
            raise UsageError("--optuna needs --metric NAME (the logged metric to optimise).")
        optuna = OptunaSearch(
            options["metric"], options["direction"], prune=not options["no_prune"]
        )
    elif options["metric"]:
        raise UsageError("--metric is for --optuna; add --optuna to search with a study.")
    spec = parse_sweep(
        options["sets"],
        options["samples"],
        trials=options["trials"],
        seeds=options["seeds"],
        optuna=optuna,
    )

    def pick(name: str, key: str | None = None) -> Any:
        given = options.get(name)
        return given if given is not None else launcher.get(key or name)

    executor = str(pick("executor") or "local")
    jobs = pick("jobs")
    resources = Resources(
        cpus=pick("cpus"),
        gpus=pick("gpus"),
        mem_gb=pick("mem_gb"),
        time_min=pick("time_min"),
        partition=pick("partition"),
        extra={k: v for k, v in launcher.items() if k not in _LAUNCHER_KEYS},
    )
    return SweepRequest(
        command=command,
        spec=spec,
        config_path=options["config_path"],
        experiment=options["experiment"],
        executor=executor,
        executor_options=_executor_options(executor, jobs, resources, pick("ray_address")),
        resources=resources,
        seed_root=options["seed_root"],
        metric_pattern=options["metric_pattern"],
        deterministic=options["deterministic"],
        cwd=str(Path.cwd()),
    )


def _executor_options(
    executor: str, jobs: int | None, resources: Resources, ray_address: str | None
) -> dict[str, Any]:
    """The keyword options of the executor's constructor (see executors/base.py)."""
    if executor == "local":
        return {"jobs": 1 if jobs is None else jobs}
    if executor == "slurm":
        options: dict[str, Any] = {"partition": resources.partition}
        if jobs:
            options["array_parallelism"] = jobs
        for key in ("max_requeue", "cluster", "folder"):
            if key in resources.extra:
                options[key] = resources.extra[key]
        return options
    if executor == "ray":
        return {"address": ray_address}
    return {}


def _launcher_section(config_path: str | None) -> dict[str, Any]:
    """The ``launcher:`` section of the config file (how and where to run), if any."""
    if not config_path or not Path(config_path).is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}  # the config's own loader says what is wrong with it
    section = data.get("launcher") if isinstance(data, dict) else None
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(
            f"'launcher' in {config_path} must be a mapping such as "
            "{executor: slurm, partition: debug, time_min: 10}, got " + repr(section) + "."
        )
    return {str(k): v for k, v in section.items()}


def _submit_with_progress(plan: Any, *, submit_fn: Any) -> int:
    """Run the sweep with a progress bar on a terminal; the exit code of the sweep."""
    from .._util.progress import progress_bar

    failed: list[JobResult] = []
    with progress_bar(f"sweep {plan.id}", unit="jobs", total=plan.size) as bar:

        def on_change(result: JobResult) -> None:
            if result.state in (JobState.QUEUED, JobState.RUNNING):
                return
            bar.advance()
            if result.state != JobState.COMPLETED and result.message != "pruned":
                failed.append(result)

        try:
            outcome = submit_fn(on_change)
        except KeyboardInterrupt:
            click.secho(
                f"replicator: sweep {plan.id} interrupted; continue it with "
                f"`replicator sweep resume {plan.id}`",
                err=True,
                fg="yellow",
            )
            return 130
    return _report(outcome, failed)


def _report(outcome: Any, failed: list[JobResult]) -> int:
    record = outcome.record
    states: dict[str, int] = {}
    for result in outcome.results:
        key = "pruned" if result.message == "pruned" else result.state.value
        states[key] = states.get(key, 0) + 1
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    for result in failed:
        why = f": {result.message}" if result.message else ""
        click.secho(
            f"replicator: job {result.index} {result.state.value} (exit code {result.exit_code})"
            + why,
            err=True,
            fg="red",
        )
    best = (record.data.get("optuna") or {}).get("best")
    if best:
        click.echo(f"best trial {best['trial']}: {best['value']} {json.dumps(best['params'])}")
    color = "green" if outcome.ok else "red"
    click.secho(f"replicator: sweep {record.id}: {counts or 'nothing to run'}", err=True, fg=color)
    if not outcome.ok:
        click.secho(
            f"replicator: see `replicator sweep status {record.id}`; re-run the failed jobs "
            f"with `replicator sweep resume {record.id}`",
            err=True,
        )
    return 0 if outcome.ok else 1


@sweep_group.command("status")
@click.argument("sweep")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@click.option("--watch", is_flag=True, help="Show a progress bar until the sweep has ended.")
def status_command(sweep: str, as_json: bool, watch: bool) -> None:
    """Where each job of SWEEP stands: queued, running, completed, failed (or pruned)."""
    store = Store.open()
    record = find_sweep(store, sweep)
    if watch:
        _watch(store, record)
        record = SweepRecord.read(record.path)
    statuses = job_statuses(store, record)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "id": record.id,
                    "experiment": record.experiment,
                    "state": record.data.get("state"),
                    "jobs": [s.as_dict() for s in statuses],
                },
                indent=2,
            )
        )
        return
    click.echo(f"sweep {record.id}  experiment {record.experiment}  {_counts(statuses)}")
    for status in statuses:
        run = status.run_id or "-"
        overrides = " ".join(status.overrides)
        click.echo(
            f"{status.index:>4}  {status.state:<9}  {run:<24}  seed={status.seed}  {overrides}"
        )


def _counts(statuses: list[JobStatus]) -> str:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status.state] = counts.get(status.state, 0) + 1
    order = ["completed", "running", "queued", "failed", "pruned", "missing"]
    return ", ".join(f"{counts[s]} {s}" for s in order if s in counts) or "no jobs"


def _watch(store: Store, record: SweepRecord) -> None:
    from .._util.progress import progress_bar

    with progress_bar(f"sweep {record.id}", unit="jobs", delay_s=0) as bar:
        done_before = 0
        while True:
            record = SweepRecord.read(record.path)
            statuses = job_statuses(store, record)
            bar.set_total(len(statuses))
            done = sum(s.state in ("completed", "failed", "pruned") for s in statuses)
            bar.advance(done - done_before)
            done_before = done
            busy = any(s.state in ("running", "queued") for s in statuses)
            if not busy and not record.submitter_alive:
                return
            time.sleep(1.0)


@sweep_group.command("resume")
@click.argument("sweep")
@click.option(
    "--executor",
    type=click.Choice(["local", "slurm", "ray"]),
    help="Run the jobs elsewhere than the sweep's recorded executor.",
)
@click.option("-j", "--jobs", type=int, help="Jobs at once (local).")
def resume_command(sweep: str, executor: str | None, jobs: int | None) -> None:
    """Run again the jobs of SWEEP that failed, crashed, were interrupted or never ran."""
    store = Store.open()
    options = {"jobs": jobs} if jobs and (executor or "local") == "local" else None
    record = find_sweep(store, sweep)
    click.secho(f"replicator: resuming sweep {record.id}", err=True, fg="cyan")

    def on_plan(indices: list[int]) -> None:
        shown = ", ".join(str(i) for i in indices) or "none"
        click.secho(f"replicator: jobs to run again: {shown}", err=True)

    class _Plan:
        id = record.id
        size = len(record.jobs)

    code = _submit_with_progress(
        _Plan(),
        submit_fn=lambda cb: resume(
            record.id,
            store=store,
            executor=executor,
            executor_options=options,
            on_change=cb,
            on_plan=on_plan,
        ),
    )
    sys.exit(code)


@sweep_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the sweeps as JSON.")
def ls_command(as_json: bool) -> None:
    """List the store's sweeps, oldest first."""
    store = Store.open()
    sweeps = list_sweeps(store)
    rows = [
        {
            "id": s.id,
            "experiment": s.experiment,
            "kind": s.data.get("kind", "seeds"),
            "jobs": len(s.jobs),
            "state": s.data.get("state", "-"),
            "executor": (s.data.get("executor") or {}).get("name", "-"),
            "created": s.data.get("created"),
        }
        for s in sweeps
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(row["created"] or 0)))
        click.echo(
            f"{row['id']:<24}  {row['experiment']:<16}  {row['kind']:<6}  {row['jobs']:>5} jobs  "
            f"{row['state']:<11}  {row['executor']:<6}  {created}"
        )
