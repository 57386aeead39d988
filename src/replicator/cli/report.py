"""``replicator report``: results over seeds as an HTML page, or a Markdown/LaTeX/CSV table."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["report_command"]


@click.command("report")
@click.argument("experiment")
@click.option(
    "--group-by", "by", metavar="KEY", help="Config key whose values are compared (e.g. model)."
)
@click.option("--metric", metavar="NAME", help="Summary metric to report (e.g. test_acc).")
@click.option(
    "--mode",
    type=click.Choice(["max", "min"]),
    default="max",
    show_default=True,
    help="Whether higher or lower is better.",
)
@click.option("--baseline", metavar="KEY=VALUE", help="Group every other group is tested against.")
@click.option(
    "--center",
    type=click.Choice(["mean", "median", "iqm"]),
    default="mean",
    show_default=True,
    help="Statistic per group (iqm: interquartile mean).",
)
@click.option(
    "--test",
    type=click.Choice(["welch", "mann-whitney", "permutation"]),
    default="welch",
    show_default=True,
    help="Test against the baseline.",
)
@click.option(
    "--correction",
    type=click.Choice(["holm", "bh", "none"]),
    default="holm",
    show_default=True,
    help="Multiple-comparison correction.",
)
@click.option(
    "--level",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Confidence level of the intervals.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of bootstrap resampling."
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["html", "md", "latex", "csv"]),
    default="html",
    show_default=True,
    help="html: the whole report; md/latex/csv: the results table.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: EXPERIMENT-report.html for html, stdout otherwise).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the table's numbers as JSON.")
@click.option(
    "--include-reproductions",
    is_flag=True,
    help="Count reproductions (runs of `replicator reproduce`) as runs of their config and seed.",
)
def report_command(
    experiment: str,
    by: str | None,
    metric: str | None,
    mode: str,
    baseline: str | None,
    center: str,
    test: str,
    correction: str,
    level: float,
    seed: int,
    format_: str,
    output: Path | None,
    as_json: bool,
    include_reproductions: bool,
) -> None:
    """Report EXPERIMENT's results over seeds, saying how every number was computed.

    Runs that did not complete (failed, crashed, interrupted, running) are left out of the
    numbers and listed in the report. n is the number of distinct seeds: reproductions are
    left out (--include-reproductions counts them) and several runs of one config and seed count
    once (the latest completed), with a warning.

    \b
    Examples:
      replicator report mlp --group-by model --metric test_acc --baseline model=linear
      replicator report mlp --metric test_acc --format latex -o table.tex
      replicator report mlp --metric loss --mode min --format md
    """
    from ..report import build_report, render_report

    report = build_report(
        experiment,
        by=by,
        metric=metric,
        mode=mode,
        baseline=baseline,
        center=center,
        test=test,
        correction=correction,
        level=level,
        seed=seed,
        plots=format_ == "html" and not as_json,
        include_reproductions=include_reproductions,
    )
    if as_json:
        frame = report.table.to_frame()
        data = {
            "experiment": experiment,
            "metric": report.metric,
            "by": report.by,
            "methods": report.table.methods,
            "rows": json.loads(frame.to_json(orient="records")),
            "excluded": [{"id": i, "status": s} for i, s, _ in report.excluded],
            "warnings": list(report.table.warnings),
        }
        click.echo(json.dumps(data, indent=2))
        return
    text = render_report(report, format_)
    if output is None and format_ == "html":
        output = Path(f"{experiment}-report.html")
    if output is None:
        click.echo(text, nl=False)
        for warning in report.seed_warnings:
            click.echo(f"Warning: {warning}", err=True)
        return
    from .._util.io import atomic_write

    atomic_write(output, text)
    click.echo(f"Wrote {output} ({len(report.runs)} runs, {len(report.excluded)} excluded).")
    for warning in report.table.warnings:
        click.echo(f"Warning: {warning}", err=True)
