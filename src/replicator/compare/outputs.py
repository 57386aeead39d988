"""The output files of two runs, matched by their place in the run's output folder.

A run records the files its command wrote (``outputs.json``) by their path relative to its
working directory. Two runs of the same command put them in different places when the output
folder is named after the time (Hydra's ``outputs/2026-11-29/07-58-38/`` or
``logs/train/runs/2026-11-29_07-58-38/``): :func:`normalise_path` turns such folder names into
``<time>``, and :func:`match_outputs` pairs the files of two runs by that normalised path.

:func:`output_role` sorts a file into *results* (metrics files, predictions, model weights: they
decide whether a reproduction reproduced) and *logs* (log files, config dumps such as Hydra's
``.hydra/*.yaml`` or Lightning's ``hparams.yaml``: reported, never deciding), and
:func:`normalise_text` removes what two equal results differ in when they were written at
another time or in another folder: embedded timestamps and the folder itself.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "LOG",
    "RESULT",
    "match_outputs",
    "normalise_path",
    "normalise_text",
    "output_role",
]

RESULT, LOG = "result", "log"

# A date with an optional time (2026-11-29, 2026-11-29_07-58-38, 2026-11-29T07:58:38.123),
# a compact stamp (20261129-075838), or a time alone (Hydra's 07-58-38 folder, 07:58:38,123).
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[_T ]\d{2}[-:]\d{2}[-:]\d{2}(?:[.,]\d+)?)?"
    r"|(?<!\d)\d{8}[-_T]\d{6}(?!\d)"
    r"|(?<![\d.])\d{2}[-:]\d{2}[-:]\d{2}(?:[.,]\d+)?(?!\d)"
)
# Log files and config dumps: reported, but they do not decide a verdict.
LOG_PATTERNS = (
    "*.log",
    "*.out",
    "*.err",
    "*.yaml",
    "*.yml",
    ".hydra/*",
    "*/.hydra/*",
    "config_tree*",
    "events.out.tfevents.*",
    "wandb/*",
    "*/wandb/*",
    "mlruns/*",
    "*/mlruns/*",
)


def normalise_path(path: str) -> str:
    """``path`` with every timestamp in it replaced by ``<time>``."""
    return _TIMESTAMP.sub("<time>", path)


def normalise_text(text: str, roots: Iterable[str] = ()) -> str:
    """``text`` with the given folders replaced by ``<root>`` and timestamps by ``<time>``."""
    for root in sorted({r.rstrip("/") for r in roots if r and len(r) > 1}, key=len, reverse=True):
        text = text.replace(root, "<root>")
    return _TIMESTAMP.sub("<time>", text)


def _matches(path: str, patterns: Sequence[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    normal = normalise_path(path)
    return any(
        fnmatch.fnmatchcase(path, p)
        or fnmatch.fnmatchcase(normal, p)
        or fnmatch.fnmatchcase(name, p)
        for p in patterns
    )


def output_role(path: str, select: Sequence[str] | None = None) -> str:
    """``result`` or ``log`` by name; with ``select`` patterns, the files they match are the
    results and every other file is ``not selected``."""
    if select:
        return RESULT if _matches(path, select) else "not selected"
    return LOG if _matches(path, LOG_PATTERNS) else RESULT


def match_outputs(
    a: Mapping[str, Any], b: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
    """``(normalised path, file of a, file of b)`` for the files of two ``outputs.json``.

    Files are paired by their normalised path; several files with one normalised path (two
    timestamped folders in one run) are paired in the order of their recorded paths.
    """
    groups: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for side, outputs in enumerate((a, b)):
        for entry in outputs.get("files") or []:
            if isinstance(entry, dict) and entry.get("path"):
                key = normalise_path(str(entry["path"]))
                groups.setdefault(key, ([], []))[side].append(entry)
    pairs: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = []
    for key in sorted(groups):
        files_a, files_b = (sorted(g, key=lambda e: str(e["path"])) for g in groups[key])
        for i in range(max(len(files_a), len(files_b))):
            pairs.append(
                (
                    key,
                    files_a[i] if i < len(files_a) else None,
                    files_b[i] if i < len(files_b) else None,
                )
            )
    return pairs
