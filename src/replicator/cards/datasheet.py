"""Datasheets for datasets (Gebru et al., "Datasheets for Datasets", 2018/2021).

The seven sections of the paper (motivation, composition, collection process, preprocessing,
uses, distribution, maintenance) with their questions; the composition section is pre-filled
from the data itself: the fingerprint (``replicator.data.fingerprint``), the number of files,
total size and the formats (file extensions) with their counts and sizes. Every question the
data cannot answer is left for the author.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .._util.format import format_size
from ..data import fingerprint
from ..errors import UsageError
from ._records import TO_WRITE

__all__ = ["Datasheet", "datasheet"]

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Motivation",
        (
            "For what purpose was the dataset created? Was there a specific task in mind?",
            "Who created the dataset (which team, on behalf of which entity)?",
            "Who funded the creation of the dataset?",
        ),
    ),
    (
        "Composition",
        (
            "What do the instances that comprise the dataset represent?",
            "How many instances are there in total?",
            "Does the dataset contain all possible instances or is it a sample?",
            "What data does each instance consist of? Is there a label or target?",
            "Are there recommended data splits (training, validation, testing)?",
            "Are there any errors, sources of noise, or redundancies?",
            "Is the dataset self-contained, or does it link to external resources?",
            "Does the dataset contain data that might be considered confidential or offensive?",
            "Does the dataset identify any subpopulations or individuals?",
        ),
    ),
    (
        "Collection Process",
        (
            "How was the data associated with each instance acquired?",
            "What mechanisms or procedures were used to collect the data?",
            "Who was involved in the data collection process and how were they compensated?",
            "Over what timeframe was the data collected?",
            "Were any ethical review processes conducted?",
        ),
    ),
    (
        "Preprocessing/cleaning/labeling",
        (
            "Was any preprocessing, cleaning or labeling of the data done?",
            "Was the raw data saved in addition to the preprocessed data?",
            "Is the software used to preprocess the data available?",
        ),
    ),
    (
        "Uses",
        (
            "Has the dataset been used for any tasks already?",
            "What (other) tasks could the dataset be used for?",
            "Is there anything about the composition or collection that might impact future uses?",
            "Are there tasks for which the dataset should not be used?",
        ),
    ),
    (
        "Distribution",
        (
            "Will the dataset be distributed to third parties? How (tarball, API, GitHub)?",
            "When will the dataset be distributed?",
            "Under which copyright or intellectual property license, and/or terms of use?",
            "Have any third parties imposed restrictions on the data?",
        ),
    ),
    (
        "Maintenance",
        (
            "Who will be supporting/hosting/maintaining the dataset? How can they be contacted?",
            "Will the dataset be updated? How often, by whom, and how will updates be announced?",
            "Will older versions continue to be supported?",
            "If others want to extend or contribute to the dataset, is there a mechanism?",
        ),
    ),
)


@dataclass(frozen=True)
class Datasheet:
    """A rendered datasheet and the facts it was pre-filled with."""

    text: str
    path: Path
    facts: dict[str, Any]


def _facts(path: Path, store: Any) -> dict[str, Any]:
    fp = fingerprint(path, store=store)
    entries = [(e.relpath, e.size) for e in fp.entries] or [(path.name, fp.size)]
    facts: dict[str, Any] = {
        "fingerprint": f"{fp.algo}:{fp.digest}",
        "nfiles": fp.nfiles,
        "size": fp.size,
        "kind": fp.kind,
    }
    formats: dict[str, list[int]] = {}
    for rel, size in entries:
        suffix = "".join(PurePosixPath(rel).suffixes[-2:]).lower() or "(no extension)"
        slot = formats.setdefault(suffix, [0, 0])
        slot[0] += 1
        slot[1] += size
    facts["formats"] = {k: {"files": v[0], "bytes": v[1]} for k, v in sorted(formats.items())}
    top = sorted({rel.split("/", 1)[0] for rel, _ in entries if "/" in rel})
    facts["top_level_dirs"] = top[:20]
    return facts


def datasheet(
    path: str | os.PathLike[str], *, name: str | None = None, store: Any = None
) -> Datasheet:
    """A datasheet for the dataset at ``path`` (a file or directory), composition pre-filled."""
    target = Path(path)
    if not target.exists():
        raise UsageError(f"Dataset path {target} does not exist. Give a file or directory.")
    facts = _facts(target, store)
    title = name or target.resolve().name
    out = [f"# Datasheet for {title}", ""]
    out += [
        "<!-- Sections and questions from Gebru et al., 'Datasheets for Datasets' (2021). "
        f"Composition facts measured by `replicator card dataset {os.fspath(path)}`. -->",
        "",
    ]
    for section, questions in SECTIONS:
        out += [f"## {section}", ""]
        if section == "Composition":
            out += ["Measured from the data:", ""]
            if facts["fingerprint"]:
                out.append(
                    f"- **Fingerprint:** `{facts['fingerprint']}` (`replicator data` verifies it)"
                )
            else:
                out.append("- **Fingerprint:** not computed (replicator.data is not available)")
            out.append(f"- **Files:** {facts['nfiles']}")
            out.append(
                f"- **Total size:** {format_size(float(facts['size']))} ({facts['size']} bytes)"
            )
            if facts["top_level_dirs"]:
                out.append(f"- **Top-level folders:** {', '.join(facts['top_level_dirs'])}")
            out += ["", "| format | files | size |", "|---|---:|---:|"]
            for fmt, info in facts["formats"].items():
                out.append(f"| {fmt} | {info['files']} | {format_size(float(info['bytes']))} |")
            out.append("")
        for question in questions:
            out += [f"**{question}**", "", TO_WRITE, ""]
    return Datasheet("\n".join(out), target.resolve(), facts)
