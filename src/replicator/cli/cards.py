"""``replicator card model|dataset`` and ``replicator checklist``: thin shells over
:mod:`replicator.cards`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .._util.io import atomic_write
from ..cards import checklist, datasheet, model_card

_GROUP_HELP = (
    "Describe the runs of this config: KEY=VALUE, repeatable (default: the config with the most "
    "seeds, when the runs ran several)."
)
_HASH_HELP = "Describe the runs whose config hash starts with HASH."


def _emit(text: str, output: Path | None, what: str) -> None:
    if output is None:
        click.echo(text)
    else:
        atomic_write(output, text if text.endswith("\n") else text + "\n")
        click.echo(f"Wrote {what} to {output}.", err=True)


@click.group("card")
def card_group() -> None:
    """Write a model card or a datasheet from what replicator recorded.

    \b
    Example:
      replicator card model mlp -o MODEL_CARD.md
      replicator card dataset data/cifar10 -o DATASHEET.md
    """


@card_group.command("model")
@click.argument("ref")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the card here (default: standard output).",
)
@click.option(
    "--name", default=None, help="Model name in the model-index (default: the experiment)."
)
@click.option(
    "--task", default=None, help="Task type, e.g. image-classification (default: config 'task')."
)
@click.option(
    "--dataset", default=None, help="Dataset name (default: config 'dataset' or the recorded data)."
)
@click.option("--license", "license_", default=None, help="License id for the metadata, e.g. mit.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the metadata as JSON instead of the card."
)
@click.option("--group", multiple=True, metavar="KEY=VALUE", help=_GROUP_HELP)
@click.option("--config-hash", default=None, metavar="HASH", help=_HASH_HELP)
def model_command(
    ref: str,
    output: Path | None,
    name: str | None,
    task: str | None,
    dataset: str | None,
    license_: str | None,
    as_json: bool,
    group: tuple[str, ...],
    config_hash: str | None,
) -> None:
    """Model card (Hugging Face layout) for RUN or EXPERIMENT (its completed runs).

    The YAML metadata holds a model-index with each summary metric's mean over the seeds (n and
    SD in the metric name); the body is filled from configs, seeds, data fingerprints, hardware,
    software and run times, and marks the rest "[To be written by the author]". Each config and
    seed counts once; when the runs ran several configs, the card describes one (--group,
    --config-hash; default: the one with the most seeds) and lists the others.

    \b
    Example:
      replicator card model mlp --task image-classification --dataset cifar10 -o MODEL_CARD.md
    """
    card = model_card(
        ref,
        name=name,
        task=task,
        dataset=dataset,
        license=license_,
        group=group,
        config_hash=config_hash,
    )
    if as_json:
        click.echo(json.dumps({"runs": list(card.runs), "metadata": card.metadata}, indent=2))
        return
    _emit(card.text, output, "the model card")


@card_group.command("dataset")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the datasheet here (default: standard output).",
)
@click.option("--name", default=None, help="Dataset name (default: the folder name).")
@click.option("--json", "as_json", is_flag=True, help="Print the measured facts as JSON.")
def dataset_command(path: Path, output: Path | None, name: str | None, as_json: bool) -> None:
    """Datasheet (Gebru et al.) for the dataset at PATH, with fingerprint, counts, sizes, formats.

    \b
    Example:
      replicator card dataset data/cifar10 -o data/cifar10/DATASHEET.md
    """
    sheet = datasheet(path, name=name)
    if as_json:
        click.echo(json.dumps({"path": str(sheet.path), **sheet.facts}, indent=2))
        return
    _emit(sheet.text, output, "the datasheet")


@click.command("checklist")
@click.argument("experiment")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the checklist here (default: standard output).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the items as JSON.")
@click.option("--group", multiple=True, metavar="KEY=VALUE", help=_GROUP_HELP)
@click.option("--config-hash", default=None, metavar="HASH", help=_HASH_HELP)
def checklist_command(
    experiment: str,
    output: Path | None,
    as_json: bool,
    group: tuple[str, ...],
    config_hash: str | None,
) -> None:
    """ML Reproducibility Checklist v2.0 (21 items) for EXPERIMENT, answered from its runs.

    Answers the number of runs and seeds, statistics, hyperparameters, runtime, computing
    infrastructure, code availability (README score) and dataset sizes; leaves the rest open.

    \b
    Example:
      replicator checklist mlp -o CHECKLIST.md
    """
    result = checklist(experiment, group=group, config_hash=config_hash)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    _emit(result.markdown(), output, "the checklist")
