"""``replicator data``: fingerprint datasets, diff them, verify them against DVC or a run."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

ALGO_CHOICE = click.Choice(["blake3", "md5", "xxh3"])


def _print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@click.group("data")
def data_group() -> None:
    """Fingerprint datasets, compare them and verify them against DVC or a run.

    \b
    Example:
      replicator data fingerprint data/
      replicator data fingerprint data/ --algo md5     # compare with data.dvc
      replicator data diff RUN_A RUN_B
      replicator data verify --against dvc.lock
    """


@data_group.command("fingerprint")
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "--algo",
    type=ALGO_CHOICE,
    default="blake3",
    show_default=True,
    help="Hash algorithm; md5 gives DVC 3's digests.",
)
@click.option(
    "--no-cache", "no_cache", is_flag=True, help="Hash every file, ignoring the stat cache."
)
@click.option(
    "--entries", is_flag=True, help="Include the manifest entries (with --json, or listed)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the fingerprint as JSON.")
def fingerprint_command(path: str, algo: str, no_cache: bool, entries: bool, as_json: bool) -> None:
    """Fingerprint a file or directory: digest, size, file count and a stored manifest.

    \b
    Example:
      replicator data fingerprint data/train
      replicator data fingerprint data/train --algo md5 --json
    """
    from .._util.progress import progress_bar
    from ..data.diff import format_size
    from ..data.fingerprint import fingerprint

    with progress_bar(f"Hashing {path}", unit="bytes") as bar:
        fp = fingerprint(path, algo=algo, use_cache=not no_cache, progress=bar)
    for relpath, reason in fp.skipped:
        click.echo(f"skipped {relpath}: {reason}", err=True)
    for note in fp.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        _print_json(fp.as_dict(with_entries=entries))
        return
    click.echo(f"{fp}  {format_size(fp.size)} in {fp.nfiles} file(s)  {fp.path}")
    if fp.manifest_id:
        click.echo(f"manifest: {fp.manifest_id}")
    if entries:
        for e in fp.entries:
            click.echo(f"{e.digest}  {e.size:>12}  {e.relpath}")


def _print_diff(d: Any, limit: int) -> None:
    click.echo(d.summary())
    lines = _diff_lines(d)
    for line in lines[:limit]:
        click.echo(line)
    if len(lines) > limit:
        click.echo(f"... and {len(lines) - limit} more (use --limit or --json)")


@data_group.command("diff")
@click.argument("a")
@click.argument("b")
@click.option(
    "--algo",
    type=ALGO_CHOICE,
    default=None,
    help="Algorithm for paths (default: the recorded side's, else blake3).",
)
@click.option("--name", default=None, help="Dataset name when a run recorded several.")
@click.option("--limit", default=50, show_default=True, help="Files to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
def diff_command(
    a: str, b: str, algo: str | None, name: str | None, limit: int, as_json: bool
) -> None:
    """Files added, removed, modified and renamed between two datasets.

    A and B are paths, runs (their recorded datasets) or manifest ids (ALGO/DIGEST.dir).
    Exit code 0 when they are identical, 1 when they differ.

    \b
    Example:
      replicator data diff data/ 20261126-141503-7f3a
      replicator data diff RUN_A RUN_B --name train --json
    """
    from ..data.diff import diff

    d = diff(a, b, algo=algo, name=name)
    if as_json:
        _print_json(d.as_dict())
    else:
        _print_diff(d, limit)
    # sys.exit, not click's Exit: main() runs click with standalone_mode=False.
    sys.exit(1 if d.changed else 0)


@data_group.command("verify")
@click.argument("path", required=False)
@click.option(
    "--against",
    required=True,
    help="A dvc.lock, a .dvc file, or a run id whose recorded datasets to check.",
)
@click.option("--name", default=None, help="Dataset name, when verifying against a run.")
@click.option("--limit", default=20, show_default=True, help="Changed files to list per entry.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_command(
    path: str | None, against: str, name: str | None, limit: int, as_json: bool
) -> None:
    """Check data against dvc.lock, a .dvc file or a run; exit 1 if anything differs.

    DVC 2's legacy md5-dos2unix entries (no 'hash:' key) are checked the way DVC 2 hashed them.

    \b
    Example:
      replicator data verify --against dvc.lock
      replicator data verify data/train --against data/train.dvc
      replicator data verify --against 20261126-141503-7f3a
    """
    from ..data.dvc import verify

    report = verify(path, against=against, name=name)
    if as_json:
        _print_json(report.as_dict())
    else:
        for c in report.checks:
            click.echo(f"{c.status:<8} {c.name}  ({c.path})")
            if c.status == "differ":
                click.echo(f"         expected {c.algo}:{c.expected}, found {c.algo}:{c.actual}")
            if c.note:
                click.echo(f"         {c.note}")
            if c.diff is not None:
                click.echo("         " + c.diff.summary())
                for line in _diff_lines(c.diff)[:limit]:
                    click.echo("         " + line)
        matched = sum(c.status == "match" for c in report.checks)
        click.echo(f"{matched} of {len(report.checks)} entries match ({report.against}).")
    sys.exit(0 if report.ok else 1)


def _diff_lines(d: Any) -> list[str]:
    return (
        [f"+ {e.relpath}" for e in d.added]
        + [f"- {e.relpath}" for e in d.removed]
        + [f"M {new.relpath}" for _, new in d.modified]
        + [f"R {old.relpath} -> {new.relpath}" for old, new in d.renamed]
    )
