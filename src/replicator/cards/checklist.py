"""The ML Reproducibility Checklist v2.0 (Pineau et al., 2020), answered from run records.

21 items: models and algorithms (3), theory (2), datasets (5), code (5: the ML Code Completeness
items, answered by :func:`replicator.release.score_readme` on the project), experimental results
(6). Items the records can answer (number of runs and seeds, the statistics used, the
hyperparameters that varied, runtime, computing infrastructure, code availability, dataset sizes)
are answered with the facts; the others are left open for the author.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config import flatten
from ..store import RunRecord, StoreLike
from ._records import (
    RunSet,
    dataset_text,
    format_duration,
    load_runs,
    software_text,
)

__all__ = ["CHECKLIST_ITEMS", "Checklist", "ChecklistItem", "checklist"]

CHECKLIST_ITEMS: tuple[tuple[str, str], ...] = (
    ("Models and algorithms", "A clear description of the mathematical setting, algorithm, and/or model."),
    ("Models and algorithms", "A clear explanation of any assumptions."),
    ("Models and algorithms", "An analysis of the complexity (time, space, sample size) of any algorithm."),
    ("Theoretical claims", "A clear statement of the claim."),
    ("Theoretical claims", "A complete proof of the claim."),
    ("Datasets", "The relevant statistics, such as number of examples."),
    ("Datasets", "The details of train / validation / test splits."),
    ("Datasets", "An explanation of any data that were excluded, and all pre-processing steps."),
    ("Datasets", "A link to a downloadable version of the dataset or simulation environment."),
    (
        "Datasets",
        "For new data collected, a complete description of the data collection process, such as "
        "instructions to annotators and methods for quality control.",
    ),
    ("Code", "Specification of dependencies."),
    ("Code", "Training code."),
    ("Code", "Evaluation code."),
    ("Code", "(Pre-)trained model(s)."),
    ("Code", "README file includes table of results accompanied by precise command to run to produce those results."),
    (
        "Experimental results",
        "The range of hyper-parameters considered, method to select the best hyper-parameter "
        "configuration, and specification of all hyper-parameters used to generate results.",
    ),
    ("Experimental results", "The exact number of training and evaluation runs."),
    ("Experimental results", "A clear definition of the specific measure or statistics used to report results."),
    ("Experimental results", "A description of results with central tendency (e.g. mean) & variation (e.g. error bars)."),
    ("Experimental results", "The average runtime for each result, or estimated energy cost."),
    ("Experimental results", "A description of the computing infrastructure used."),
)  # fmt: skip


@dataclass(frozen=True)
class ChecklistItem:
    """One item: its number (1-21), section, text, whether the records answer it, and how."""

    number: int
    section: str
    text: str
    answered: bool
    answer: str


@dataclass(frozen=True)
class Checklist:
    """The ML Reproducibility Checklist answered from an experiment's runs, one item each."""

    experiment: str
    items: tuple[ChecklistItem, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def answered(self) -> int:
        return sum(i.answered for i in self.items)

    def markdown(self) -> str:
        out = [
            f"# ML Reproducibility Checklist (v2.0) for experiment '{self.experiment}'",
            "",
            f"{self.answered} of {len(self.items)} items answered from the run records; "
            "the open ones are for the author.",
            "",
        ]
        out += [line for note in self.notes for line in (f"> **Note:** {note}", "")]
        section = None
        for item in self.items:
            if item.section != section:
                section = item.section
                out += [f"## {section}", ""]
            mark = "x" if item.answered else " "
            out.append(f"- [{mark}] **{item.number}. {item.text}**")
            for line in item.answer.splitlines():
                out.append(f"  {line}" if line else "")
            out.append("")
        return "\n".join(out)

    def as_dict(self) -> dict[str, object]:
        return {
            "experiment": self.experiment,
            "answered": self.answered,
            "notes": list(self.notes),
            "items": [
                {
                    "number": i.number,
                    "section": i.section,
                    "text": i.text,
                    "answered": i.answered,
                    "answer": i.answer,
                }
                for i in self.items
            ],
        }


def _hyperparameters(config: dict) -> dict[str, object]:
    """The config's dotted keys, seed left out; lists shown as tuples of their items' text."""
    flat = flatten({k: v for k, v in config.items() if k != "seed"})
    return {
        k: tuple(map(str, v)) if isinstance(v, list) else v
        for k, v in flat.items()
        if not (isinstance(v, dict) and not v)  # an empty section has no key to show
    }


def checklist(
    experiment: str,
    *,
    store: StoreLike = None,
    group: Sequence[str] = (),
    config_hash: str | None = None,
) -> Checklist:
    """The 21 items for an experiment (or a single run), answered where the records can.

    Results are those of one config (``group`` / ``config_hash``, else the one with the most
    seeds), one run per seed; the hyperparameters considered span every config.
    """
    runs = load_runs(experiment, store=store, group=group, config_hash=config_hash)
    records = runs.records
    answers: dict[int, str] = {}

    datasets = runs.datasets()
    if datasets:
        answers[6] = (
            "Partly, from the recorded fingerprints (examples per split: for the author):\n"
            + "\n".join(
                f"- {name}: {dataset_text(rec)}, `{rec.get('algo')}:{rec.get('digest')}`"
                for name, rec in datasets.items()
            )
        )

    answers.update(_code_answers(runs))
    hyperparameters = _hyperparameters_answer(runs.considered or records)
    if hyperparameters:
        answers[16] = hyperparameters

    seeds = runs.seeds
    answers[17] = (
        (f"For {runs.group}: " if runs.group else "")
        + f"{len(records)} completed run(s) with seeds {', '.join(map(str, seeds)) or 'not recorded'} "
        f"(ids: {', '.join(r.id for r in records[:10])}{' ...' if len(records) > 10 else ''})."
    )
    metrics = runs.metrics()
    if metrics:
        answers[18] = (
            "Each metric is the value in the run's summary.json; across runs we report the mean and "
            "the sample standard deviation (ddof=1) with n, the number of distinct seeds (one run "
            "per config and seed; reproductions left out)."
        )
        answers[19] = "\n".join(f"- {m.name}: {m.text()}" for m in metrics)
    durations = runs.durations()
    if durations:
        mean = sum(durations) / len(durations)
        answers[20] = (
            f"Mean wall-clock time per run {format_duration(mean)} (n={len(durations)}), "
            f"total {format_duration(sum(durations))}. Energy: for the author."
        )
    infra = runs.hardware() + software_text(runs.first_file("environment.json"))
    if infra:
        answers[21] = "\n".join(f"- {line}" for line in infra)

    items = []
    for number, (section, text) in enumerate(CHECKLIST_ITEMS, start=1):
        if number in answers:
            items.append(ChecklistItem(number, section, text, True, answers[number]))
        else:
            hint = answers.get(-number, "Open: for the author.")
            items.append(ChecklistItem(number, section, text, False, hint))
    return Checklist(runs.experiment, tuple(items), runs.notes)


def _code_answers(runs: RunSet) -> dict[int, str]:
    """Items 11-15 from the README score: an answer when found, else (at -number) advice."""
    from ..release.readme import score_readme

    answers: dict[int, str] = {}
    score = score_readme(root=runs.project_root)
    for offset, item in enumerate(score.items):
        number = 11 + offset
        if item.passed:
            answers[number] = "Yes: " + "; ".join(item.evidence[:2])
        else:
            answers[-number] = f"Not found in the repository. {item.advice}"
    return answers


def _hyperparameters_answer(records: Sequence[RunRecord]) -> str | None:
    """Item 16: how many keys, which varied across runs and which were fixed."""
    flat = [_hyperparameters(r.config) for r in records]
    keys = sorted(set().union(*flat)) if flat else []
    if not keys:
        return None
    varied = {
        k: sorted({str(f.get(k)) for f in flat})
        for k in keys
        if len({str(f.get(k)) for f in flat}) > 1
    }
    fixed = [f"{k}={flat[0].get(k)}" for k in keys if k not in varied]
    lines = [
        f"All hyper-parameters are recorded per run (config.yaml, hparams.csv); {len(keys)} keys."
    ]
    if varied:
        lines.append(
            "Varied across runs: "
            + "; ".join(f"{k} in {{{', '.join(v)}}}" for k, v in varied.items())
        )
    lines.append("Fixed: " + ", ".join(fixed[:20]) + (" ..." if len(fixed) > 20 else ""))
    lines.append("How the best configuration was selected: for the author.")
    return "\n".join(lines)
