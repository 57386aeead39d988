"""``release check``: everything that should be fixed before a research repository goes public.

:func:`check_release` runs, over the files a release would publish (see :mod:`.files`):

- secrets (:mod:`.scan`): known key formats, high-entropy values next to credential words,
  credential files, notebook sources and outputs; with ``history=True`` every reachable commit;
- hard-coded absolute paths (:mod:`.paths`);
- repository hygiene: README present and scored (:mod:`.readme`), LICENSE, citation information,
  formatting (``ruff format --check`` or ``black --check`` when installed), notebooks saved with
  outputs, files over 50 MB (GitHub refuses files over 100 MB).

Findings silenced inline or listed in the baseline are counted, not reported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import UsageError
from .files import ProjectFiles, list_project_files, read_text
from .findings import (
    DEFAULT_BASELINE,
    SEVERITIES,
    Finding,
    load_baseline,
    severity_rank,
    suppressed_rules,
)
from .paths import scan_paths
from .readme import ReadmeScore, find_readme, score_readme
from .scan import MAX_SCAN_BYTES, credential_file_findings, scan_history, scan_secrets

__all__ = ["FAIL_ON", "CheckReport", "check_release"]

FAIL_ON = ("error", "warning", "never")
"""The levels ``--fail-on`` accepts: fail on errors, on warnings too, or never."""
LARGE_FILE_BYTES = 50 * 1024 * 1024
GITHUB_LIMIT_BYTES = 100 * 1024 * 1024
_LICENSE = re.compile(r"^(?:LICEN[CS]E|COPYING|UNLICENSE)(?:[.\-_][\w.\-]*)?$", re.I)
_CITATION = re.compile(r"^CITATION(?:\.cff|\.bib|\.md|\.txt)?$", re.I)
_CITE_IN_README = re.compile(
    r"@(?:article|inproceedings|misc|software|techreport)\s*\{|citation", re.I
)


@dataclass(frozen=True)
class CheckReport:
    """Findings of one check, worst first, with what was silenced and what was checked."""

    root: Path
    findings: tuple[Finding, ...]
    files_checked: int
    suppressed: int = 0
    baselined: int = 0
    history: bool = False
    formatter: str | None = None
    formatting_requested: bool = True
    readme: ReadmeScore | None = None
    all_findings: tuple[Finding, ...] = field(default=(), repr=False)

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    def failed(self, fail_on: str = "error") -> bool:
        """Whether a finding is at or above ``fail_on`` (never: always False)."""
        if fail_on == "never":
            return False
        floor = severity_rank(fail_on)
        return any(severity_rank(f.severity) >= floor for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "files_checked": self.files_checked,
            "history": self.history,
            "formatter": self.formatter,
            "counts": {s: self.count(s) for s in reversed(SEVERITIES)},
            "suppressed": self.suppressed,
            "baselined": self.baselined,
            "readme": self.readme.as_dict() if self.readme else None,
            "findings": [f.as_dict() for f in self.findings],
        }


def check_release(
    path: str | os.PathLike[str] = ".",
    *,
    history: bool = False,
    baseline: str | os.PathLike[str] | None = None,
    formatting: bool = True,
) -> CheckReport:
    """Check the project at ``path`` before release (see the module docstring).

    ``baseline`` defaults to ``.replicator-baseline.json`` in ``path`` when that file exists.
    """
    project = list_project_files(path)
    root = project.root
    if history and not project.is_git:
        raise UsageError(
            f"--history needs a git repository, and {root} is not in one. "
            "Run the check without --history, or from the repository."
        )
    findings: list[Finding] = []
    # Only file heads (for whole-file suppressions) and notebooks are kept: a repository may
    # track gigabytes of text data, which is scanned file by file and dropped.
    heads: dict[str, str] = {}
    notebooks: dict[str, str] = {}
    for rel in project.files:
        text = read_text(root / rel, limit=MAX_SCAN_BYTES)
        if text is None or rel == DEFAULT_BASELINE:
            continue
        heads[rel] = "\n".join(text[:2000].splitlines()[:5])
        if rel.endswith(".ipynb"):
            notebooks[rel] = text
        findings.extend(scan_secrets(text, rel))
        findings.extend(scan_paths(text, rel))
    findings.extend(credential_file_findings(project.files, _tracked(project)))
    findings.extend(_large_files(project))
    findings.extend(_notebook_outputs(notebooks))
    readme_score = _repository_files(project, findings)
    formatter = None
    if formatting:
        formatter, fmt = _formatting(project)
        findings.extend(fmt)
    if history and project.is_git:
        current = {f.fingerprint for f in findings}
        findings.extend(f for f in scan_history(root) if f.fingerprint not in current)

    suppressed = 0
    kept: list[Finding] = []
    for f in findings:
        if f.line is None and f.file in heads and _file_silenced(heads[f.file], f.rule):
            suppressed += 1
        else:
            kept.append(f)
    accepted = load_baseline(baseline if baseline is not None else root / DEFAULT_BASELINE)
    reported = [f for f in kept if f.fingerprint not in accepted]
    reported.sort(key=lambda f: (-severity_rank(f.severity), f.commit or "", f.file, f.line or 0))
    return CheckReport(
        root=root,
        findings=tuple(reported),
        files_checked=len(project.files),
        suppressed=suppressed,
        baselined=len(kept) - len(reported),
        history=history,
        formatter=formatter,
        formatting_requested=formatting,
        readme=readme_score,
        all_findings=tuple(kept),
    )


def _tracked(project: ProjectFiles) -> set[str] | None:
    return set(project.tracked) if project.tracked is not None else None


def _file_silenced(text: str, rule: str) -> bool:
    for line in text.splitlines()[:5]:
        rules = suppressed_rules(line)
        if rules and rules & {"*", rule}:
            return True
    return False


def _repository_files(project: ProjectFiles, findings: list[Finding]) -> ReadmeScore | None:
    top = [f for f in project.files if "/" not in f]
    readme = find_readme(project.root)
    score = None
    if readme is None:
        findings.append(
            Finding.of_file(
                "README.md",
                rule="readme-missing",
                severity="warning",
                message="no README at the project root",
                fix="Write a README.md: what the code does, how to install, train, evaluate, the "
                "results table with its commands (`replicator readme score` lists what is missing).",
            )
        )
    else:
        score = score_readme(readme, root=project.root, files=list(project.files))
        if score.missing:
            names = ", ".join(item.title.lower() for item in score.missing)
            findings.append(
                Finding.of_file(
                    readme.name,
                    rule="readme-incomplete",
                    severity="note",
                    message=f"README scores {score.score}/5 on the ML Code Completeness Checklist; "
                    f"missing: {names}",
                    fix="Run `replicator readme score` for what to add for each missing item.",
                )
            )
    readme_text = (read_text(readme, limit=MAX_SCAN_BYTES) or "") if readme else ""
    if not any(_LICENSE.match(f) for f in top):
        findings.append(_license_missing(readme.name if readme else None, readme_text))
    if not any(_CITATION.match(f) for f in top) and not _CITE_IN_README.search(readme_text):
        findings.append(
            Finding.of_file(
                "CITATION.cff",
                rule="citation-missing",
                severity="note",
                message="no citation information (CITATION.cff or a BibTeX entry in the README)",
                fix="Add a CITATION.cff (GitHub shows a 'Cite this repository' button for it) or a "
                "BibTeX block in the README.",
            )
        )
    return score


def _license_missing(readme: str | None, readme_text: str) -> Finding:
    """No LICENSE file: a warning, or a note when the README itself holds a license's text."""
    held = _license_in_text(readme_text) if readme else None
    if readme and held:
        return Finding.of_file(
            "LICENSE",
            rule="license-missing",
            severity="note",
            message=f"no LICENSE file; the {held} license text is in {readme}: a LICENSE file is "
            "recommended (GitHub, PyPI and license scanners look for that file, not the README)",
            fix=f"Move the license text from {readme} into a LICENSE file and keep a line such "
            f"as 'License: {held}, see LICENSE' in {readme}.",
        )
    return Finding.of_file(
        "LICENSE",
        rule="license-missing",
        severity="warning",
        message="no LICENSE file: without one, nobody may legally reuse the code",
        fix="Add a LICENSE file (MIT, BSD-3-Clause and Apache-2.0 are common for research "
        "code; see choosealicense.com).",
    )


# A sentence of each common license's text (or of the notice that applies it): whitespace is
# collapsed first, since a README wraps the text at its own width.
_LICENSE_TEXTS = (
    ("MIT", "permission is hereby granted, free of charge, to any person obtaining a copy"),
    ("BSD", "redistribution and use in source and binary forms, with or without modification"),
    ("Apache-2.0", "licensed under the apache license, version 2.0"),
    ("Apache-2.0", "apache license version 2.0, january 2004"),
    ("GPL", "gnu general public license as published by the free software foundation"),
    ("GPL", "gnu general public license version 3, 29 june 2007"),
    ("LGPL", "gnu lesser general public license as published by the free software foundation"),
    ("MPL-2.0", "subject to the terms of the mozilla public license"),
    ("ISC", "permission to use, copy, modify, and/or distribute this software for any purpose"),
    ("Unlicense", "this is free and unencumbered software released into the public domain"),
)


def _license_in_text(text: str) -> str | None:
    """The license whose text (or applying notice) ``text`` holds, or None."""
    flat = " ".join(text.lower().split())
    for name, sentence in _LICENSE_TEXTS:
        if sentence in flat:
            return name
    return None


def _large_files(project: ProjectFiles) -> list[Finding]:
    out = []
    for rel in project.files:
        try:
            size = (project.root / rel).stat().st_size
        except OSError:
            continue
        if size <= LARGE_FILE_BYTES:
            continue
        severity = "error" if size > GITHUB_LIMIT_BYTES else "warning"
        out.append(
            Finding.of_file(
                rel,
                rule="large-file",
                severity=severity,
                message=f"{size / 2**20:.0f} MiB file in the repository"
                + (" (GitHub refuses files over 100 MiB)" if severity == "error" else ""),
                fix="Move data and weights out of git: publish them (Zenodo, Hugging Face Hub) "
                "and download them in a script, or track them with DVC or git LFS.",
            )
        )
    return out


def _notebook_outputs(texts: dict[str, str]) -> list[Finding]:
    out = []
    for rel, text in texts.items():
        if not rel.endswith(".ipynb"):
            continue
        try:
            cells = json.loads(text).get("cells") or []
        except (ValueError, AttributeError):
            continue
        with_outputs = [
            n for n, c in enumerate(cells, 1) if isinstance(c, dict) and c.get("outputs")
        ]
        if with_outputs:
            out.append(
                Finding.of_file(
                    rel,
                    rule="notebook-outputs",
                    severity="warning",
                    message=f"notebook saved with outputs in {len(with_outputs)} cell(s) "
                    f"(first: cell {with_outputs[0]}); outputs can leak paths, data and keys",
                    fix=f"Clear them: `jupyter nbconvert --clear-output --inplace {rel}` "
                    "(or install nbstripout as a git filter).",
                )
            )
    return out


def _find_tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _formatting(project: ProjectFiles) -> tuple[str | None, list[Finding]]:
    py = [f for f in project.files if PurePosixPath(f).suffix in (".py", ".pyi")]
    if not py:
        return None, []
    ruff = _find_tool("ruff")
    black = None if ruff else _find_tool("black")
    if ruff:
        cmd, name = [ruff, "format", "--check", "--no-cache", "--"], "ruff format"
    elif black:
        cmd, name = [black, "--check", "--"], "black"
    else:
        return None, []
    # ruff < 0.9 and black: "Would reformat: PATH" / "would reformat PATH"; newer ruff:
    # "PATH:1:2: unformatted: ..." (concise) or " --> PATH:1:2" (full diagnostics).
    pattern = re.compile(
        r"^(?:[Ww]ould reformat:? (?P<path>.+)|(?:--> )?(?P<diag>.+?):\d+:\d+(?:: unformatted.*)?)$"
    )
    flagged: list[str] = []
    for start in range(0, len(py), 500):
        try:
            proc = subprocess.run(
                [*cmd, *py[start : start + 500]],
                cwd=project.root,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None, []
        for line in (proc.stdout + proc.stderr).splitlines():
            m = pattern.match(line.strip())
            if m:
                found = (m["path"] or m["diag"]).strip()
                if found not in flagged and (project.root / found).is_file():
                    flagged.append(found)
    out = []
    for rel in flagged:
        rel_path = Path(rel)
        if rel_path.is_absolute():
            try:
                rel = rel_path.relative_to(project.root).as_posix()
            except ValueError:
                pass
        out.append(
            Finding.of_file(
                rel,
                rule="formatting",
                severity="warning",
                message=f"not formatted ({name} --check)",
                fix=f"Run `{name.split()[0]} format {rel}`"
                if name.startswith("ruff")
                else f"Run `black {rel}`",
            )
        )
    return name, out
