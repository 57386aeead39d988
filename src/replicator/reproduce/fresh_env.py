"""Build a fresh virtual environment from a run's recorded packages (``--env fresh``).

With uv (the ``uv`` binary next to the interpreter, the ``uv`` Python package, or on ``PATH``)
``uv venv`` + ``uv pip install`` take seconds; otherwise ``python -m venv`` + pip. Packages are
pinned to the recorded versions and origins (see
:func:`replicator.environment.requirements_from_environment`); editable packages are installed
from a checkout of their recorded commit with their recorded uncommitted changes (the snapshot
taken at capture), or, when those changes were not recorded, from their current state with a
note.

The user's pip configuration (``find-links``, ``index-url``, ``extra-index-url`` from pip's
config files and ``PIP_*`` variables) is passed on to uv, which reads none of it. A package whose
exact wheel sits in a find-links folder (a ``torch 2.13.0+cpu`` installed from a local wheel
folder) is installed from there: its build label no longer sends the installer to an index it
may not reach. ``installer="pip"|"uv"`` chooses the tool.

Environments are cached by the hash of what they install (requirements, Python, tool, pip
settings) under ``~/.cache/replicator/envs`` (``XDG_CACHE_HOME``): a second reproduce of the same
environment reuses it after checking its installed versions. Local and editable packages (which
differ per checkout) go into a small per-reproduction layer over the cached one.
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
from ..capture.environment import normalise_name, scan_packages
from ..capture.git import git
from ..environment.requirements import (
    Requirement,
    requirements_from_environment,
    requirements_text,
)
from ..errors import ReproduceError
from .checkout import Checkout, checkout_commit

__all__ = [
    "FreshEnv",
    "PipSettings",
    "build_fresh_env",
    "find_python",
    "find_uv",
    "local_wheel",
    "pip_settings",
    "plan_requirements",
]


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
    cached: bool = False

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


@dataclass(frozen=True)
class PipSettings:
    """Where the user's pip looks for packages: its config files and ``PIP_*`` variables."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()

    def uv_args(self) -> list[str]:
        """The same places as uv options (uv reads no pip configuration)."""
        args = [arg for link in self.find_links for arg in ("--find-links", link)]
        if self.index_url:
            args += ["--index-url", self.index_url]
        return args + [arg for url in self.extra_index_urls for arg in ("--extra-index-url", url)]


def _pip_config_files(environ: Mapping[str, str]) -> list[Path]:
    home = Path(environ.get("HOME") or Path.home())
    xdg = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    files = [Path("/etc/xdg/pip/pip.conf"), Path("/etc/pip.conf")]
    files += [home / ".pip" / "pip.conf", xdg / "pip" / "pip.conf"]
    if environ.get("VIRTUAL_ENV"):
        files.append(Path(environ["VIRTUAL_ENV"]) / "pip.conf")
    given = environ.get("PIP_CONFIG_FILE")
    if given == os.devnull:
        return []
    if given:
        files.append(Path(given))
    return files


def pip_settings(environ: Mapping[str, str] | None = None) -> PipSettings:
    """The find-links folders and indexes pip would use here (files in pip's order, then env)."""
    import configparser

    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    for path in _pip_config_files(env):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                for key in ("find-links", "index-url", "extra-index-url"):
                    if parser.has_option(section, key):
                        values[key] = parser.get(section, key)
    for key in ("find-links", "index-url", "extra-index-url"):
        variable = "PIP_" + key.upper().replace("-", "_")
        if env.get(variable):
            values[key] = env[variable]
    links = tuple(
        p for p in values.get("find-links", "").split() if p and (os.path.isdir(p) or "://" in p)
    )
    index = values.get("index-url", "").split()
    return PipSettings(
        find_links=links,
        index_url=index[0] if index else None,
        extra_index_urls=tuple(values.get("extra-index-url", "").split()),
    )


def local_wheel(name: str, version: str, find_links: tuple[str, ...]) -> Path | None:
    """The wheel of exactly ``name==version`` in a find-links folder, if there is one."""
    for folder in find_links:
        if not os.path.isdir(folder):
            continue
        try:
            files = sorted(os.listdir(folder))
        except OSError:
            continue
        for filename in files:
            parts = filename.split("-")
            if (
                filename.endswith(".whl")
                and len(parts) >= 5
                and normalise_name(parts[0]) == normalise_name(name)
                and parts[1] == version
            ):
                return Path(folder) / filename
    return None


def _from_local_wheels(reqs: list[Requirement], settings: PipSettings) -> list[Requirement]:
    """Build-labelled pins whose wheel is in a find-links folder: no extra index for them."""
    out = []
    for req in reqs:
        wheel = local_wheel(req.name, req.version, settings.find_links) if req.index_url else None
        if wheel is None:
            out.append(req)
            continue
        out.append(
            Requirement(
                req.name, req.version, req.origin, req.line, note=f"from the local wheel {wheel}"
            )
        )
    return out


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "replicator" / "envs"


def _site_packages(prefix: Path, version: list[int] | None) -> Path:
    if version:
        return prefix / "lib" / f"python{version[0]}.{version[1]}" / "site-packages"
    found = sorted(prefix.glob("lib/python*/site-packages"))
    return found[0] if found else prefix / "lib" / "site-packages"


@dataclass(frozen=True)
class _Plan:
    """How to build: the interpreter, the tool and its commands' shared parts."""

    python: str
    version: list[int] | None
    tool: str
    uv: str | None
    settings: PipSettings

    def create(self, prefix: Path) -> list[str]:
        if self.uv is not None:
            return [self.uv, "venv", "--quiet", "--python", self.python, str(prefix)]
        return [self.python, "-m", "venv", str(prefix)]

    def install(self, prefix: Path, *args: str) -> list[str]:
        python = str(prefix / "bin" / "python")
        if self.uv is not None:
            # pip's behaviour with an extra index (e.g. PyTorch's for a +cpu build): the best
            # match over all indexes. uv's default takes the first index that has a name, and
            # PyTorch's index mirrors old versions of filelock, sympy, ... that miss exact pins.
            return [
                self.uv, "pip", "install", "--quiet", "--python", python,
                *self.settings.uv_args(), "--index-strategy", "unsafe-best-match", *args,
            ]  # fmt: skip
        return [python, "-m", "pip", "install", "-q", *args]


def _run_steps(steps: list[list[str]], tool: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise _install_error(proc.stderr + proc.stdout, tool)


def _matches(prefix: Path, plan: _Plan, reqs: list[Requirement]) -> bool:
    """Whether a cached environment still holds exactly the pinned versions."""
    if not (prefix / ".replicator-env.json").is_file():
        return False
    have = {
        k: str(v.get("version"))
        for k, v in scan_packages([str(_site_packages(prefix, plan.version))]).items()
    }
    return all(have.get(normalise_name(r.name)) == r.version for r in reqs)


def _cached_base(plan: _Plan, reqs: list[Requirement], workdir: Path) -> tuple[Path, bool]:
    """The cached environment holding ``reqs`` (index and VCS packages): (prefix, reused)."""
    import hashlib
    import json

    text = requirements_text(reqs)
    key = hashlib.sha256(
        json.dumps(
            [text, plan.python, plan.version, plan.tool, plan.settings.uv_args()], sort_keys=True
        ).encode()
    ).hexdigest()[:20]
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    prefix = root / key
    with _CacheLock(root / f"{key}.lock"):
        if _matches(prefix, plan, reqs):
            return prefix, True
        shutil.rmtree(prefix, ignore_errors=True)
        req_path = workdir / "requirements-base.txt"
        atomic_write(req_path, text)
        try:
            _run_steps([plan.create(prefix), plan.install(prefix, "-r", str(req_path))], plan.tool)
        except ReproduceError:
            shutil.rmtree(prefix, ignore_errors=True)
            raise
        atomic_write(prefix / ".replicator-env.json", json.dumps({"requirements": text}) + "\n")
    return prefix, False


class _CacheLock:
    """An exclusive lock on a cache entry: an atomic mkdir, taken over after 30 minutes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        deadline = time.monotonic() + 1800
        while True:
            try:
                self.path.mkdir()
                return
            except FileExistsError:
                try:
                    age = time.time() - self.path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age > 1800 or time.monotonic() > deadline:
                    shutil.rmtree(self.path, ignore_errors=True)
                    continue
                time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _layer(plan: _Plan, base: Path, dest: Path, local: list[Requirement], workdir: Path) -> None:
    """A small environment for the local packages over the cached ``base`` (a .pth file)."""
    _run_steps([plan.create(dest)], plan.tool)
    site = _site_packages(dest, plan.version)
    site.mkdir(parents=True, exist_ok=True)
    (site / "_replicator_base.pth").write_text(f"{_site_packages(base, plan.version)}\n")
    req_path = workdir / "requirements-local.txt"
    atomic_write(req_path, requirements_text(local))
    _run_steps([plan.install(dest, "--no-deps", "-r", str(req_path))], plan.tool)
    # the base's console scripts (torchrun, ...), run by this environment's interpreter
    shebang = f"#!{base / 'bin' / 'python'}"
    for script in sorted((base / "bin").iterdir()):
        target = dest / "bin" / script.name
        if target.exists() or not script.is_file():
            continue
        try:
            text = script.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        first, _, rest = text.partition("\n")
        if first.startswith(shebang):
            target.write_text(f"#!{dest / 'bin' / 'python'}{first[len(shebang) :]}\n{rest}")
            target.chmod(0o755)


def build_fresh_env(
    environment: Mapping[str, Any],
    *,
    dest: str | os.PathLike[str],
    project: Checkout | None = None,
    workdir: str | os.PathLike[str],
    use_uv: bool | None = None,
    installer: str | None = None,
    cache: bool = True,
    on_note: Callable[[str], None] | None = None,
) -> FreshEnv:
    """A virtual environment with the recorded packages installed (cached; see the module doc).

    ``installer``: ``"uv"``, ``"pip"`` or None (uv when available); ``use_uv`` is the older
    spelling. ``cache=False`` builds everything at ``dest``.
    """
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
    settings = pip_settings()
    reqs, more, checkouts = plan_requirements(environment, project=project, workdir=work)
    reqs = _from_local_wheels(reqs, settings)
    notes += more
    for note in notes:
        if on_note:
            on_note(note)
    req_path = work / "requirements.txt"
    atomic_write(req_path, requirements_text(reqs, header="fresh environment for reproduce"))
    plan = _plan(python, have, installer, use_uv, settings)
    local = [r for r in reqs if r.is_local]
    try:
        if not cache:
            _run_steps([plan.create(prefix), plan.install(prefix, "-r", str(req_path))], plan.tool)
            cached = False
        else:
            base, cached = _cached_base(plan, [r for r in reqs if not r.is_local], work)
            if local:
                _layer(plan, base, prefix, local, work)
            else:
                prefix = base
    except ReproduceError:
        for checkout in checkouts:
            checkout.remove()
        raise
    if cached:
        notes.append(f"reused the cached environment {base} (same packages, checked)")
    return FreshEnv(
        prefix=prefix,
        python=prefix / "bin" / "python",
        tool=plan.tool,
        requirements=req_path,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
        checkouts=tuple(checkouts),
        cached=cached,
    )


def _plan(
    python: str,
    have: list[int] | None,
    installer: str | None,
    use_uv: bool | None,
    settings: PipSettings,
) -> _Plan:
    if installer not in (None, "uv", "pip"):
        raise ReproduceError(
            "environment", f"--installer must be 'uv' or 'pip', got '{installer}'."
        )
    want_uv = installer == "uv" or (installer is None and use_uv is not False)
    uv = find_uv() if want_uv else None
    if (installer == "uv" or use_uv) and uv is None:
        raise ReproduceError(
            "environment",
            "uv was asked for but is not installed.",
            hint="pip install uv, or use --installer pip.",
        )
    return _Plan(python, have, "uv" if uv else "pip", uv, settings)
