"""Build a fresh virtual environment from a run's recorded packages (``--env fresh``).

With uv (the ``uv`` binary next to the interpreter, the ``uv`` Python package, or on ``PATH``)
``uv venv`` + ``uv pip install`` take seconds; otherwise ``python -m venv`` + pip. Packages are
pinned to the recorded versions and origins (see
:func:`replicator.environment.requirements_from_environment`); editable packages are installed
from a checkout of their recorded commit with their recorded uncommitted changes (the snapshot
taken at capture), or, when those changes were not recorded, from their current state with a
note. pip's ``find-links`` setting (``PIP_FIND_LINKS``) is passed on to uv, which ignores it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.io import atomic_write
from ..capture.git import git
from ..environment.requirements import (
    Requirement,
    requirements_from_environment,
    requirements_text,
)
from ..errors import ReproduceError
from .checkout import Checkout, checkout_commit

__all__ = ["FreshEnv", "build_fresh_env", "find_python", "find_uv", "plan_requirements"]


@dataclass(frozen=True)
class FreshEnv:
    """A built environment: its interpreter, the tool that built it and what it installed."""

    prefix: Path
    python: Path
    tool: str
    requirements: Path
    seconds: float
    notes: tuple[str, ...] = ()
    checkouts: tuple[Checkout, ...] = ()

    @property
    def bin(self) -> Path:
        return self.python.parent


def find_uv() -> str | None:
    """The uv executable: beside this interpreter, from the ``uv`` package, or on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    return shutil.which("uv")


def _version_of(python: str) -> list[int] | None:
    try:
        proc = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except OSError:
        return None
    if proc.returncode != 0:
        return None
    return [int(x) for x in proc.stdout.split()]


def find_python(version_info: list[int] | None) -> tuple[str, list[int] | None, bool]:
    """An interpreter for ``version_info``: (path, its version, whether the patch level matches)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    candidates = [base, sys.executable]
    if version_info and len(version_info) >= 2:
        major, minor = version_info[:2]
        for name in (f"python{major}.{minor}", f"python{major}"):
            found = shutil.which(name)
            if found:
                candidates.append(found)
    seen: set[str] = set()
    fallback: tuple[str, list[int] | None, bool] | None = None
    for candidate in candidates:
        if candidate in seen:
            continue
        seen.add(candidate)
        have = _version_of(candidate)
        if have is None:
            continue
        if not version_info or have[:3] == list(version_info[:3]):
            return candidate, have, True
        if have[:2] == list(version_info[:2]) and fallback is None:
            fallback = (candidate, have, False)
    if fallback is not None:
        return fallback
    wanted = ".".join(map(str, (version_info or [])[:2]))
    raise ReproduceError(
        "environment",
        f"no Python {wanted} interpreter found (tried {', '.join(sorted(seen))}).",
        hint=f"Install Python {wanted} or reproduce with --env current.",
    )


def plan_requirements(
    environment: Mapping[str, Any],
    *,
    project: Checkout | None,
    workdir: Path,
) -> tuple[list[Requirement], list[str], list[Checkout]]:
    """Requirements to install, notes, and the package checkouts made for editable packages."""
    notes: list[str] = []
    checkouts: list[Checkout] = []
    out: list[Requirement] = []
    for req in requirements_from_environment(environment):
        if req.line is None:
            raise ReproduceError(
                "environment",
                f"package {req.name}=={req.version} is not installable from the record "
                f"({req.note}).",
                hint="Reproduce with --env current in an environment that has it.",
            )
        if not req.is_local:
            out.append(req)
            continue
        out.append(_local(req, project=project, workdir=workdir, notes=notes, made=checkouts))
    return out, notes, checkouts


def _local(
    req: Requirement,
    *,
    project: Checkout | None,
    workdir: Path,
    notes: list[str],
    made: list[Checkout],
) -> Requirement:
    """Where an editable or local package comes from in the fresh environment."""
    assert req.source is not None
    flag = "-e " if req.origin == "editable" else ""
    recorded = dict(req.git or {})

    def at(path: Path, note: str) -> Requirement:
        line = f"{flag}{path}" if flag else f"{req.name} @ file://{path}"
        return Requirement(req.name, req.version, req.origin, line, source=str(path), note=note)

    if project is not None and project.contains(req.source):
        return at(project.path_for(req.source), "from the run's code snapshot")
    repo = Path(str(recorded.get("repo"))) if recorded.get("repo") else None
    rel = Path(req.source).resolve().relative_to(repo.resolve()) if repo else Path()
    rev = recorded.get("snapshot") or (
        recorded.get("commit") if not recorded.get("dirty") else None
    )
    if repo is not None and rev:
        current = git(repo, "status", "--porcelain=v1", check=False).text
        head = git(repo, "rev-parse", "HEAD", check=False).text
        if not recorded.get("dirty") and head == rev and not current:
            return at(Path(req.source), f"at its recorded commit {rev[:12]}")
        checkout = checkout_commit(repo, str(rev), workdir / f"pkg-{req.name}")
        made.append(checkout)
        what = (
            "snapshot of its recorded uncommitted changes" if recorded.get("snapshot") else "commit"
        )
        return at(checkout.root / rel, f"checked out at its recorded {what} {str(rev)[:12]}")
    if not Path(req.source).exists():
        raise ReproduceError(
            "environment",
            f"package {req.name}'s source {req.source} is gone and no commit was recorded.",
        )
    why = (
        "was recorded with uncommitted changes that were not recorded"
        if recorded.get("dirty")
        else "has no recorded commit"
    )
    note = f"{req.name} {why}; installed from its current state at {req.source}"
    notes.append(note)
    return at(Path(req.source), note)


_CULPRIT = (
    re.compile(r"no version of ([\w.\-\[\]]+==[\w.+!\-]+)"),  # uv
    re.compile(r"you require ([\w.\-\[\]]+==[\w.+!\-]+)"),  # uv, pin conflicts
    re.compile(r"No matching distribution found for ([^\s]+)"),  # pip
    re.compile(r"satisfies the requirement ([^\s]+)"),  # pip
    re.compile(r"Failed to (?:build|download|prepare distributions?) `?([^`\s:]+)"),  # uv
)


def _install_error(output: str, tool: str) -> ReproduceError:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    text = " | ".join(line.strip() for line in lines[-6:])[-700:]
    culprit = next((m.group(1) for p in _CULPRIT if (m := p.search(output))), None)
    which = f" ({culprit})" if culprit else ""
    return ReproduceError(
        "environment",
        f"package not installable{which}: {tool} failed: {text}",
        hint="Check that the package index is reachable, or reproduce with --env current.",
    )


def _find_links() -> list[str]:
    value = os.environ.get("PIP_FIND_LINKS", "")
    return [p for p in value.split() if p and (os.path.isdir(p) or "://" in p)]


def build_fresh_env(
    environment: Mapping[str, Any],
    *,
    dest: str | os.PathLike[str],
    project: Checkout | None = None,
    workdir: str | os.PathLike[str],
    use_uv: bool | None = None,
    on_note: Callable[[str], None] | None = None,
) -> FreshEnv:
    """Create a virtual environment at ``dest`` with the recorded packages installed."""
    started = time.perf_counter()
    prefix, work = Path(dest), Path(workdir)
    version_info = (environment.get("python") or {}).get("version_info")
    python, have, exact = find_python(version_info)
    notes: list[str] = []
    if not exact and version_info:
        notes.append(
            f"Python {'.'.join(map(str, version_info))} was recorded; using "
            f"{'.'.join(map(str, have or []))} ({python})"
        )
    reqs, more, checkouts = plan_requirements(environment, project=project, workdir=work)
    notes += more
    for note in notes:
        if on_note:
            on_note(note)
    req_path = work / "requirements.txt"
    atomic_write(req_path, requirements_text(reqs, header="fresh environment for reproduce"))
    uv = find_uv() if use_uv is not False else None
    if use_uv and uv is None:
        raise ReproduceError("environment", "uv was asked for but is not installed.")
    if uv is not None:
        tool = "uv"
        steps = [
            [uv, "venv", "--quiet", "--python", python, str(prefix)],
            [uv, "pip", "install", "--quiet", "--python", str(prefix / "bin" / "python")]
            + [arg for link in _find_links() for arg in ("--find-links", link)]
            # pip's behaviour with an extra index (e.g. PyTorch's for a +cpu build): the best
            # match over all indexes. uv's default takes the first index that has a name, and
            # PyTorch's index mirrors old versions of filelock, sympy, ... that miss exact pins.
            + ["--index-strategy", "unsafe-best-match"]
            + ["-r", str(req_path)],
        ]
    else:
        tool = "pip"
        steps = [
            [python, "-m", "venv", str(prefix)],
            [str(prefix / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(req_path)],
        ]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            for checkout in checkouts:
                checkout.remove()
            raise _install_error(proc.stderr + proc.stdout, tool)
    return FreshEnv(
        prefix=prefix,
        python=prefix / "bin" / "python",
        tool=tool,
        requirements=req_path,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
        checkouts=tuple(checkouts),
    )
