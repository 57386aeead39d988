"""Why a reproduction's command failed: the exception that ended it, and a missing file.

The cause quotes the exception of the last traceback in the run's ``stderr.log``
(``RuntimeError: Error downloading ...``), not the last line, which is often a framework's
advice (Hydra's ``Set the environment variable HYDRA_FULL_ERROR=1 ...``). When the original
working tree holds a file or folder that the code snapshot lacks (ignored by git, such as
``data/``), the cause names it and says how to declare it, so that reproduce verifies the data
and links it into the checkout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..capture.git import git
from ..store import read_part
from .checkout import Checkout

__all__ = ["failure_cause", "last_exception"]

_TRACEBACK = "Traceback (most recent call last)"
_CHAIN = ("During handling of", "The above exception", _TRACEBACK)
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(?::\s.*|:)?$")
_QUOTED = re.compile(r"""['"]([^'"\n]+)['"]""")
_PUNCTUATION = "'\"`,;:()[]{}<>"
# ignored entries that are never data the run read
_NOT_DATA = frozenset(
    {".replicator", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox"}
)
MAX_NAMED = 3


def failure_cause(result: Any, run_dir: Path, checkout: Checkout, *, original: Path) -> str:
    """One line: how the command ended, its exception, and what the snapshot lacked."""
    cause = f"run: the command {result.status} with exit code {result.exit_code}"
    stderr = _read_stderr(run_dir)
    exception = last_exception(stderr)
    if exception:
        cause += f": {exception}"
    else:
        tail = stderr.strip().splitlines()[-3:]
        cause += (": " + " | ".join(tail))[:400] if tail else ""
    cwd = Path(str(read_part(run_dir, "run.json").get("cwd") or checkout.root))
    # every traceback: a chained exception's path is often in the one it was raised from
    first = stderr.find(_TRACEBACK)
    named = _named_missing(
        stderr[first:][-20_000:] if first >= 0 else stderr[-2000:], cwd, checkout
    )
    if named:
        return cause + (
            f" ({named} exists in the original working tree but not in the code snapshot, "
            f"which lacks what git ignores: {_DECLARE})"
        )
    ignored = _ignored_missing(cwd, checkout, original)
    if ignored:
        return cause + (
            f" (the code snapshot lacks {', '.join(ignored)}, ignored by git but present in the "
            f"original working tree; if the run reads it, {_DECLARE})"
        )
    if "FileNotFoundError" in cause or "No such file" in cause:
        cause += f" (files ignored by git are not in the code snapshot: {_DECLARE})"
    return cause


_DECLARE = (
    "declare it as a dataset in the config's data: section (data: {name: path}) so that "
    "reproduce verifies it and links it in"
)


def _read_stderr(run_dir: Path) -> str:
    try:
        return (run_dir / "stderr.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _last_traceback(stderr: str) -> str:
    at = stderr.rfind(_TRACEBACK)
    return stderr[at:] if at >= 0 else ""


def last_exception(stderr: str) -> str:
    """The exception line of the last traceback in ``stderr`` (``RuntimeError: ...``), or ""."""
    block = _last_traceback(stderr)
    for line in block.splitlines()[1:]:
        if not line or line[0].isspace() or line.startswith(_CHAIN):
            continue
        if _EXCEPTION_LINE.match(line):
            return line.strip()[:300]
    return ""


def _candidates(text: str) -> list[str]:
    words = [w.strip(_PUNCTUATION).rstrip(".") for w in text.split()]
    found = _QUOTED.findall(text) + [w for w in words if "/" in w]
    return [c for c in dict.fromkeys(found) if c and "://" not in c]


def _named_missing(text: str, cwd: Path, checkout: Checkout) -> str | None:
    """The first path named in ``text`` that the original tree has and the checkout lacks."""
    for named in _candidates(text):
        path = Path(named)
        here = path if path.is_absolute() else cwd / path
        try:
            rel = here.resolve().relative_to(checkout.root.resolve())
        except (ValueError, OSError):
            continue
        if rel == Path(".") or here.exists():
            continue
        # the shallowest folder on the way (or the file) that the snapshot lacks
        original = checkout.repo / rel
        for candidate in [*reversed(original.parents), original]:
            if candidate == checkout.repo or checkout.repo not in candidate.parents:
                continue
            if candidate.exists() and not checkout.path_for(candidate).exists():
                shown = candidate.relative_to(checkout.repo).as_posix()
                return f"{shown}/" if candidate.is_dir() else shown
    return None


def _ignored_missing(cwd: Path, checkout: Checkout, original: Path) -> list[str]:
    """Ignored entries of the original tree (not the run's own outputs) the checkout lacks."""
    if not checkout.repo.is_dir():
        return []
    proc = git(
        checkout.repo,
        "ls-files",
        "--others",
        "--ignored",
        "--exclude-standard",
        "--directory",
        "--no-empty-directory",
        check=False,
    )
    if not proc.ok:
        return []
    outputs = read_part(original, "outputs.json").get("files") or []
    made = {str(f.get("path", "")).split("/", 1)[0] for f in outputs if isinstance(f, dict)}
    found = []
    for line in proc.text.splitlines():
        rel = line.rstrip("/")
        top = rel.split("/", 1)[0]
        path = checkout.repo / rel
        if top in made or top in _NOT_DATA or (path / "pyvenv.cfg").exists():
            continue
        if path.exists() and not (checkout.root / rel).exists():
            found.append(line)
        if len(found) >= MAX_NAMED:
            break
    return found
