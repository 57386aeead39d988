"""``replicator env export``: a run's environment as requirements, conda, Docker, Apptainer or
repo2docker files, each checked for syntax here (no container engine runs on this machine).

Every format pins the recorded Python version and packages (see
:mod:`replicator.environment.requirements` for how origins are kept) and the container formats
set the determinism variables the run had (``PYTHONHASHSEED``, ``CUBLAS_WORKSPACE_CONFIG``,
thread counts...).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.io import atomic_write
from ..errors import UsageError
from .requirements import Requirement, requirements_from_environment, requirements_text

__all__ = [
    "FORMATS",
    "EnvExport",
    "check_apptainer",
    "check_dockerfile",
    "check_export",
    "export_environment",
    "recorded_env_vars",
]

FORMATS = ("requirements", "conda", "dockerfile", "apptainer", "repo2docker")
"""The formats :func:`export_environment` writes (``replicator env export --format``)."""
DOCKER_INSTRUCTIONS = frozenset(
    [
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "MAINTAINER",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
    ]
)
APPTAINER_SECTIONS = frozenset(
    [
        "setup",
        "files",
        "environment",
        "post",
        "runscript",
        "startscript",
        "test",
        "labels",
        "help",
        "app",
        "appinstall",
        "appenv",
        "apprun",
        "applabels",
        "apphelp",
        "apptest",
        "appfiles",
    ]
)
# Variables worth fixing in a container: they change numbers or thread counts.
_THREAD_AND_DETERMINISM = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "MKL_CBWR",
    "KMP_DETERMINISTIC_REDUCTION",
    "JAX_ENABLE_X64",
    "XLA_FLAGS",
)


@dataclass(frozen=True)
class EnvExport:
    """Files written (or to be written) for one format, and problems found in them."""

    format: str
    files: dict[str, str]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    written: tuple[Path, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "files": sorted(self.files),
            "written": [str(p) for p in self.written],
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def _python_version(environment: Mapping[str, Any]) -> str:
    info = (environment.get("python") or {}).get("version_info")
    if isinstance(info, list) and len(info) >= 2:
        return ".".join(str(x) for x in info[:3])
    text = str((environment.get("python") or {}).get("version") or "")
    m = re.match(r"(\d+\.\d+(\.\d+)?)", text)
    if not m:
        raise UsageError("The run's environment.json records no Python version; cannot export.")
    return m.group(1)


def recorded_env_vars(meta: Mapping[str, Any], environment: Mapping[str, Any]) -> dict[str, str]:
    """Determinism and thread variables the run's command had (child env wins over relevant)."""
    out: dict[str, str] = {}
    relevant = environment.get("relevant_env") or {}
    child = meta.get("child_env") or {}
    for key in _THREAD_AND_DETERMINISM:
        value = child.get(key, relevant.get(key))
        if value is not None and "***" not in str(value):
            out[key] = str(value)
    if "PYTHONHASHSEED" not in out and meta.get("seed") is not None:
        out["PYTHONHASHSEED"] = str(meta["seed"])
    return out


def _header(meta: Mapping[str, Any], environment: Mapping[str, Any]) -> str:
    os_facts = environment.get("os") or {}
    return (
        f"Environment of replicator run {meta.get('id')}\n"
        f"Python {_python_version(environment)} on {os_facts.get('system', '?')} "
        f"{os_facts.get('machine', '')}; written by `replicator env export`"
    )


def _conda(meta: Mapping[str, Any], environment: Mapping[str, Any], req_text: str) -> str:
    import yaml

    conda = environment.get("conda") or {}
    explicit = conda.get("explicit")
    if isinstance(explicit, list) and explicit:
        return "@EXPLICIT\n" + "\n".join(str(x) for x in explicit) + "\n"
    pip_lines = [
        line for line in req_text.splitlines() if line.strip() and not line.startswith("#")
    ]
    doc = {
        "name": f"replicator-{meta.get('id')}",
        "channels": ["conda-forge"],
        "dependencies": [f"python={_python_version(environment)}", "pip", {"pip": pip_lines}],
        "variables": recorded_env_vars(meta, environment),
    }
    return f"# {_header(meta, environment).replace(chr(10), chr(10) + '# ')}\n" + yaml.safe_dump(
        doc, sort_keys=False, default_flow_style=False
    )


def _env_lines(variables: Mapping[str, str], prefix: str) -> list[str]:
    return [f"{prefix}{k}={json.dumps(v)}" for k, v in sorted(variables.items())]


def _project_installs(reqs: list[Requirement], repo: str | None) -> list[str]:
    """Paths (relative to the repository) of local packages that live in the run's repository."""
    if not repo:
        return []
    out = []
    for req in reqs:
        if req.is_local and req.source:
            try:
                rel = Path(req.source).resolve().relative_to(Path(repo).resolve())
            except ValueError:
                continue
            target = "/work" if str(rel) == "." else f"/work/{rel.as_posix()}"
            out.append(("-e " if req.origin == "editable" else "") + target)
    return out


def _dockerfile(
    meta: Mapping[str, Any],
    environment: Mapping[str, Any],
    installs: Sequence[str] = (),
) -> str:
    version = _python_version(environment)
    variables = recorded_env_vars(meta, environment)
    lines = [
        "# syntax=docker/dockerfile:1",
        *[f"# {line}" for line in _header(meta, environment).splitlines()],
        f"FROM python:{version}-slim",
    ]
    if variables:
        lines.append("ENV " + " \\\n    ".join(_env_lines(variables, "")))
    lines += [
        "WORKDIR /work",
        "COPY requirements.txt /tmp/replicator-requirements.txt",
        "RUN python -m pip install --no-cache-dir -r /tmp/replicator-requirements.txt",
        "# the project itself (the run's snapshot, e.g. from `git worktree add`)",
        "COPY . /work",
        *[f"RUN python -m pip install --no-cache-dir --no-deps {spec}" for spec in installs],
        'CMD ["bash"]',
    ]
    return "\n".join(lines) + "\n"


def _apptainer(meta: Mapping[str, Any], environment: Mapping[str, Any]) -> str:
    version = _python_version(environment)
    variables = recorded_env_vars(meta, environment)
    env_block = "\n".join(_env_lines(variables, "    export ")) or "    :"
    return (
        "Bootstrap: docker\n"
        f"From: python:{version}-slim\n\n"
        "%labels\n"
        f"    replicator.run {meta.get('id')}\n\n"
        "%help\n"
        f"    {_header(meta, environment).splitlines()[0]}\n\n"
        "%files\n"
        "    requirements.txt /opt/replicator/requirements.txt\n\n"
        "%environment\n"
        f"{env_block}\n\n"
        "%post\n"
        "    python -m pip install --no-cache-dir -r /opt/replicator/requirements.txt\n\n"
        "%runscript\n"
        '    exec "$@"\n'
    )


def _binder(
    meta: Mapping[str, Any], environment: Mapping[str, Any], req_text: str
) -> dict[str, str]:
    version = _python_version(environment)
    variables = recorded_env_vars(meta, environment)
    start = (
        "#!/bin/bash\n# determinism and thread variables of the recorded run\n"
        + "\n".join(_env_lines(variables, "export "))
        + '\nexec "$@"\n'
    )
    return {
        ".binder/runtime.txt": f"python-{'.'.join(version.split('.')[:2])}\n",
        ".binder/requirements.txt": req_text,
        ".binder/start": start,
    }


def export_environment(
    run_dir: str | os.PathLike[str],
    *,
    format: str = "requirements",
    output: str | os.PathLike[str] | None = None,
) -> EnvExport:
    """Build (and with ``output``, write) the files of ``format`` for a recorded run."""
    from ..store import read_part

    if format not in FORMATS:
        raise UsageError(f"Unknown export format '{format}'; choose one of {', '.join(FORMATS)}.")
    folder = Path(run_dir)
    meta = read_part(folder, "run.json")
    environment = read_part(folder, "environment.json")
    if not environment.get("packages"):
        raise UsageError(
            f"Run {meta.get('id', folder.name)} has no recorded packages (environment.json "
            "missing or empty); there is nothing to export."
        )
    reqs = requirements_from_environment(environment)
    header = _header(meta, environment)
    notes = tuple(f"{r.name}: {r.note}" for r in reqs if r.note)
    container = format in ("dockerfile", "apptainer", "repo2docker")
    req_text = requirements_text(reqs, header=header, skip_local=container)
    files: dict[str, str]
    if format == "requirements":
        files = {"requirements.txt": req_text}
    elif format == "conda":
        files = {"environment.yml": _conda(meta, environment, requirements_text(reqs))}
    elif format == "dockerfile":
        installs = _project_installs(reqs, read_part(folder, "code.json").get("repo"))
        files = {
            "Dockerfile": _dockerfile(meta, environment, installs),
            "requirements.txt": req_text,
        }
    elif format == "apptainer":
        files = {"replicator.def": _apptainer(meta, environment), "requirements.txt": req_text}
    else:
        files = _binder(meta, environment, req_text)
    if container and any(r.is_local for r in reqs):
        notes += ("local and editable packages are commented out: copy them into the image",)
    problems = tuple(check_export(files))
    written: list[Path] = []
    if output is not None:
        base = Path(output)
        for rel, text in files.items():
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, text, fsync=False)
            if rel.endswith("/start"):
                target.chmod(0o755)
            written.append(target)
    return EnvExport(format, files, problems, notes, tuple(written))


# --------------------------------------------------------------------------- syntax checks
def check_export(files: Mapping[str, str]) -> list[str]:
    """Problems in exported files, by their names (empty when all parse)."""
    import yaml

    problems: list[str] = []
    for name, text in files.items():
        base = name.rsplit("/", 1)[-1]
        if base == "Dockerfile":
            problems += [f"{name}: {p}" for p in check_dockerfile(text)]
        elif base.endswith(".def"):
            problems += [f"{name}: {p}" for p in check_apptainer(text)]
        elif base == "environment.yml" and not text.startswith("@EXPLICIT"):
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                problems.append(f"{name}: not valid YAML ({exc})")
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("dependencies"), list):
                problems.append(f"{name}: needs a 'dependencies' list")
        elif base == "runtime.txt" and not re.fullmatch(r"python-\d+\.\d+(\.\d+)?\n?", text):
            problems.append(f"{name}: must read python-X.Y")
        elif base.endswith(".txt"):
            problems += [f"{name}: {p}" for p in _check_requirements(text)]
    return problems


def _check_requirements(text: str) -> list[str]:
    try:
        from packaging.requirements import InvalidRequirement
        from packaging.requirements import Requirement as PkgRequirement
    except ImportError:  # packaging is not a dependency; the check is best effort
        return []

    problems = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("  #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith(("-e ", "--")):
            continue
        try:
            PkgRequirement(line)
        except InvalidRequirement as exc:
            problems.append(f"line {number}: {exc}")
    return problems


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Dockerfile lines with backslash continuations joined (comment lines inside dropped)."""
    out: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        out.append((start, buffer + stripped))
        buffer = ""
    if buffer:
        out.append((start, buffer.strip() + "  <unterminated continuation>"))
    return out


def check_dockerfile(text: str) -> list[str]:
    """Structural problems of a Dockerfile: unknown instructions, FROM first, ENV/CMD forms."""
    problems: list[str] = []
    lines = _logical_lines(text)
    if not lines:
        return ["no instructions"]
    seen_from = False
    for number, line in lines:
        if line.endswith("<unterminated continuation>"):
            problems.append(f"line {number}: continuation at end of file")
            continue
        word, _, rest = line.partition(" ")
        instruction = word.upper()
        if instruction not in DOCKER_INSTRUCTIONS:
            problems.append(f"line {number}: unknown instruction {word!r}")
            continue
        if not seen_from and instruction not in ("FROM", "ARG"):
            problems.append(f"line {number}: {instruction} before FROM")
        seen_from = seen_from or instruction == "FROM"
        rest = rest.strip()
        if not rest:
            problems.append(f"line {number}: {instruction} needs arguments")
        elif instruction == "ENV":
            for item in _split_env(rest):
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", item):
                    problems.append(f"line {number}: ENV item {item!r} is not KEY=VALUE")
        elif instruction in ("CMD", "ENTRYPOINT", "RUN") and rest.startswith("["):
            try:
                value = json.loads(rest)
            except ValueError:
                problems.append(f"line {number}: {instruction} exec form is not a JSON array")
                continue
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                problems.append(f"line {number}: {instruction} exec form must list strings")
        elif instruction in ("COPY", "ADD") and len(rest.split()) < 2:
            problems.append(f"line {number}: {instruction} needs a source and a destination")
    return problems


def _split_env(text: str) -> list[str]:
    import shlex

    try:
        return shlex.split(text, posix=False)
    except ValueError:
        return [text]


def check_apptainer(text: str) -> list[str]:
    """Structural problems of an Apptainer definition: header keys and known sections."""
    problems: list[str] = []
    header: dict[str, str] = {}
    in_header = True
    sections: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if line.startswith("%"):
            in_header = False
            name = line[1:].split()[0] if line[1:].split() else ""
            if name not in APPTAINER_SECTIONS:
                problems.append(f"line {number}: unknown section %{name}")
            sections.append(name)
        elif in_header and line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition(":")
            if not sep:
                problems.append(f"line {number}: header line {line!r} is not 'Key: value'")
            header[key.strip().lower()] = value.strip()
    if "bootstrap" not in header:
        problems.append("header has no 'Bootstrap:'")
    if header.get("bootstrap") in ("docker", "library", "oras") and not header.get("from"):
        problems.append("header has no 'From:'")
    if "post" not in sections:
        problems.append("no %post section installs the packages")
    if len(set(sections)) != len(sections):
        problems.append("a section appears twice")
    return problems
