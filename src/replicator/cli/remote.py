"""``replicator push`` and ``replicator pull``: share runs through a remote store (S3, GCS, SSH,
a shared path); the library is :mod:`replicator.remote`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from .._util.format import format_size


def _progress(message: str) -> None:
    """Progress lines on a terminal only: scripts and logs get the summary."""
    if sys.stderr.isatty():
        click.echo(message, err=True)


@click.command(
    "push",
    epilog="""\b
Examples:
  replicator push s3://team-bucket/replicator
  replicator push team 20261129-101141-2ac9        # 'team' from replicator.yaml's remotes:
  replicator push /mnt/shared/replicator-remote
""",
)
@click.argument("remote")
@click.argument("runs", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print what was pushed as JSON.")
def push_command(remote: str, runs: tuple[str, ...], as_json: bool) -> None:
    """Copy finished runs (default: all) to REMOTE, adding only.

    Each run goes with its snapshot ref (a git bundle) and its declared outputs and checkpoints
    (by their BLAKE3 digest under objects/). A run appears on the remote only once complete; an
    interrupted push is finished by the next one. Runs still running are skipped.

    REMOTE is a name under 'remotes:' in replicator.yaml, a URL (s3://, gs://, ssh://, file://)
    or a path. Credentials come from fsspec's usual places and are never recorded.
    """
    from ..remote import push

    result = push(remote, runs, on_progress=None if as_json else _progress)
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    for warning in result.warnings:
        click.secho(f"warning: {warning}", err=True, fg="yellow")
    for run_id, why in result.skipped:
        click.echo(f"skipped {run_id}: {why}")
    click.echo(
        f"Pushed {len(result.pushed)} run(s) to {result.remote} ({result.files} file(s), "
        f"{result.objects} object(s), {format_size(result.bytes)}); "
        f"{len(result.already)} already there."
    )


@click.command(
    "pull",
    epilog="""\b
Examples:
  replicator pull s3://team-bucket/replicator
  replicator pull team 20261129-101141-2ac9
""",
)
@click.argument("remote")
@click.argument("runs", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print what was pulled as JSON.")
def pull_command(remote: str, runs: tuple[str, ...], as_json: bool) -> None:
    """Copy complete runs (default: all) from REMOTE into the local store, adding only.

    The runs' snapshot refs are fetched into the project's git repository and their declared
    outputs go to the store's objects/ folder, so that `replicator reproduce` can re-run them.
    RUNS are run ids or unique prefixes on the remote (`replicator ls --remote REMOTE`).
    """
    from ..remote import pull

    result = pull(remote, runs, on_progress=None if as_json else _progress)
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    for warning in result.warnings:
        click.secho(f"warning: {warning}", err=True, fg="yellow")
    click.echo(
        f"Pulled {len(result.pulled)} run(s) from {result.remote} ({result.objects} output "
        f"object(s)); {len(result.already)} already here."
    )
