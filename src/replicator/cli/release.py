"""``replicator release check|export`` and ``replicator readme score``: thin shells over
:mod:`replicator.release`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..release import (
    FAIL_ON,
    check_release,
    export_release,
    format_json,
    format_sarif,
    format_text,
    score_readme,
    write_baseline,
)
from ..release.findings import DEFAULT_BASELINE


@click.group("release")
def release_group() -> None:
    """Check a repository before it goes public, and export a clean copy.

    \b
    Example:
      replicator release check
      replicator release check --history --format sarif -o release.sarif
      replicator release export ../myproject-public
    """


@release_group.command("check")
@click.argument("path", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--history", is_flag=True, help="Also scan every commit reachable from any ref.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
    help="Output format (SARIF 2.1.0 for code-scanning upload).",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--fail-on",
    type=click.Choice(list(FAIL_ON)),
    default="error",
    show_default=True,
    help="Exit 1 when a finding is at or above this severity.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Baseline of accepted findings (hashes only). Default: PATH/{DEFAULT_BASELINE}.",
)
@click.option(
    "--update-baseline",
    is_flag=True,
    help="Accept every current finding: write their hashes to the baseline and exit 0.",
)
@click.option("--no-formatting", is_flag=True, help="Skip the ruff/black formatting check.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to this file instead of standard output.",
)
def check_command(
    path: Path,
    history: bool,
    fmt: str,
    as_json: bool,
    fail_on: str,
    baseline: Path | None,
    update_baseline: bool,
    no_formatting: bool,
    output: Path | None,
) -> None:
    """Scan for secrets, hard-coded paths and release hygiene problems.

    Secrets (W&B, Comet, Neptune, Hugging Face, OpenAI, AWS, GitHub, Google, Slack, private keys,
    high-entropy values next to key/token/secret words, credential files) in code, configs,
    shell scripts and notebooks (sources and outputs); absolute paths; README, LICENSE,
    citation, formatting, notebooks with outputs, files over 50 MB.

    Silence a line with a comment `replicator: ignore[RULE]` (or `pragma: allowlist secret`,
    `gitleaks:allow`); accept existing findings with --update-baseline.

    \b
    Example:
      replicator release check --history
      replicator release check --format sarif -o release.sarif --fail-on warning

    Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage error.
    """
    if as_json:
        fmt = "json"
    report = check_release(path, history=history, baseline=baseline, formatting=not no_formatting)
    if update_baseline:
        target = baseline or report.root / DEFAULT_BASELINE
        write_baseline(target, list(report.all_findings))
        click.echo(f"Wrote {len(report.all_findings)} accepted finding hashes to {target}.")
        return
    if fmt == "json":
        text = format_json(report)
    elif fmt == "sarif":
        text = format_sarif(report)
    else:
        text = format_text(report, fail_on=fail_on)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"Wrote {output}: {len(report.findings)} findings.", err=True)
    else:
        click.echo(text)
    if report.failed(fail_on):
        sys.exit(1)


@release_group.command("export")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("-m", "--message", default=None, help="Message of the single commit.")
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The repository whose HEAD is exported.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export_command(dest: Path, message: str | None, source: Path, as_json: bool) -> None:
    """Create DEST: a new repository with one commit holding HEAD's tracked files.

    No history, no ignored or uncommitted files, no .replicator/ store. Refused (exit 1, DEST
    removed) when the release check finds errors in what would be published. Squashing does
    not un-leak a key that was already pushed: rotate it first.

    \b
    Example:
      replicator release export ../myproject-public -m "Code for the paper"
    """
    result = export_release(source, dest, message=message)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "dest": str(result.dest),
                    "commit": result.commit,
                    "source_commit": result.source_commit,
                    "files": result.files,
                    "warnings": result.report.count("warning"),
                }
            )
        )
        return
    click.echo(
        f"Exported {result.files} files of {result.source_commit[:12]} to {result.dest} "
        f"as commit {result.commit[:12]} ({result.report.count('warning')} warnings; "
        "see `replicator release check`)."
    )


@click.group("readme")
def readme_group() -> None:
    """Score a README on the ML Code Completeness Checklist.

    \b
    Example:
      replicator readme score
      replicator readme score docs/README.md --json
    """


@readme_group.command("score")
@click.argument("readme", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the score as JSON.")
@click.option(
    "--min-score",
    type=click.IntRange(0, 5),
    default=0,
    show_default=True,
    help="Exit 1 when the score is below this.",
)
def score_command(readme: Path | None, as_json: bool, min_score: int) -> None:
    """Score README (default: the README of the current directory) from 0 to 5.

    The five items: dependencies, training code, evaluation code, pre-trained models, results
    table with the commands that produce it. Each shows the evidence found in the README and
    the repository, and what to add when it is missing.

    \b
    Example:
      replicator readme score README.md --min-score 4
    """
    score = score_readme(readme, root=readme.parent if readme else Path.cwd())
    if as_json:
        click.echo(json.dumps(score.as_dict(), indent=2))
    else:
        name = score.readme.name if score.readme else "(no README)"
        click.echo(f"{name}: {score.score}/5 on the ML Code Completeness Checklist")
        for item in score.items:
            mark = "pass" if item.passed else "MISSING"
            click.echo(f"  [{mark}] {item.title}")
            for evidence in item.evidence:
                click.echo(f"      {evidence}")
            if not item.passed:
                click.echo(f"      add: {item.advice}")
    if score.score < min_score:
        sys.exit(1)
