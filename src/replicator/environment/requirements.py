"""Turn a run's recorded packages into installable requirements, origins kept.

``environment.json`` lists every installed distribution with its origin (PEP 610): from an index,
editable, a VCS checkout, a local directory or an archive. A plain ``pip freeze`` turns all of them
into ``name==version`` pins, which cannot be installed for editable or VCS packages. Here:

- index packages are pinned exactly; a local version label that names a build (``+cpu``,
  ``+cu130``, ``+rocm6.2``) keeps the label and names the index that serves it;
- a VCS package becomes ``name @ git+URL@COMMIT``;
- an editable or local package becomes a path install (``-e PATH``), with its recorded commit and
  dirty flag in a comment; :func:`replicator.capture.editable.snapshot_editable_packages` records
  an editable package's uncommitted changes as a snapshot commit in its own repository, so that a
  reproduction can install exactly what ran.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..capture.environment import TOOLING

__all__ = [
    "Requirement",
    "build_index",
    "requirements_from_environment",
    "requirements_text",
]

PYTORCH_INDEX = "https://download.pytorch.org/whl/{label}"
_BUILD_LABEL = re.compile(r"^(cpu|cu\d{2,3}|rocm\d+(\.\d+)*|xpu)$")
_TORCH_FAMILY = ("torch", "torchvision", "torchaudio", "torchtext", "torchdata", "triton")


@dataclass(frozen=True)
class Requirement:
    """One package of a recorded environment as an install instruction.

    ``line`` is the requirements-file line (None when the package cannot be installed from the
    record alone); ``index_url`` is an extra index the line needs; ``source`` is the local
    directory of an editable or local install; ``git`` holds the recorded commit, dirty flag and
    snapshot of that directory's repository.
    """

    name: str
    version: str
    origin: str
    line: str | None
    index_url: str | None = None
    source: str | None = None
    git: Mapping[str, Any] | None = None
    note: str = ""

    @property
    def is_local(self) -> bool:
        return self.origin in ("editable", "local") and self.source is not None


def build_index(name: str, version: str) -> str | None:
    """The index serving a build-labelled version (``torch==2.9.0+cu130``), or None."""
    _, _, label = version.partition("+")
    if not label or not _BUILD_LABEL.match(label):
        return None
    if name in _TORCH_FAMILY or name.startswith("torch"):
        return PYTORCH_INDEX.format(label=label)
    return None


def _one(key: str, info: Mapping[str, Any]) -> Requirement:
    name = str(info.get("name") or key)
    version = str(info.get("version") or "")
    origin = str(info.get("origin") or "index")
    if origin == "vcs":
        url = str(info.get("url") or "")
        commit = info.get("commit")
        vcs = str(info.get("vcs") or "git")
        if not url or "***" in url or not commit:
            return Requirement(
                name,
                version,
                origin,
                None,
                note=f"VCS install without a usable URL or commit recorded ({url or 'no URL'})",
            )
        return Requirement(name, version, origin, f"{name} @ {vcs}+{url}@{commit}")
    if origin in ("editable", "local") and info.get("path"):
        path = str(info["path"])
        git = info.get("git") or None
        note = ""
        if git:
            note = f"recorded at commit {str(git.get('commit'))[:12]}"
            if git.get("dirty"):
                note += (
                    f", with uncommitted changes (snapshot {str(git.get('snapshot'))[:12]})"
                    if git.get("snapshot")
                    else ", with uncommitted changes that were not recorded"
                )
        line = f"-e {path}" if origin == "editable" else f"{name} @ file://{path}"
        return Requirement(name, version, origin, line, source=path, git=git, note=note)
    if origin in ("archive", "local"):
        url = str(info.get("url") or "")
        if url and "***" not in url:
            return Requirement(name, version, origin, f"{name} @ {url}", note="archive install")
        return Requirement(name, version, origin, None, note="archive without a usable URL")
    index = build_index(name, version)
    note = (
        f"build {version.partition('+')[2]}: inferred from the version label, usually from {index}"
        if index
        else ""
    )
    if "+" in version and index is None:
        note = "local version label: install from the index or wheel it was built for"
    return Requirement(name, version, origin, f"{name}=={version}", index_url=index, note=note)


def requirements_from_environment(
    environment: Mapping[str, Any], *, include_tooling: bool = False
) -> list[Requirement]:
    """Every recorded package of ``environment.json`` as a :class:`Requirement`, by name."""
    packages = environment.get("packages") or {}
    out = []
    for key, info in sorted(packages.items()):
        if not include_tooling and key in TOOLING:
            continue
        out.append(_one(key, info or {}))
    return out


def requirements_text(
    requirements: list[Requirement],
    *,
    header: str = "",
    skip_local: bool = False,
    find_links: tuple[str, ...] = (),
) -> str:
    """A requirements.txt: extra indexes first, one pin per line, notes as comments.

    ``skip_local`` comments out path installs (for container builds, which cannot see the
    host's directories).
    """
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    indexes = sorted({r.index_url for r in requirements if r.index_url})
    lines += [f"--extra-index-url {url}" for url in indexes]
    lines += [f"--find-links {path}" for path in find_links]
    for req in requirements:
        comment = f"  # {req.note}" if req.note else ""
        if req.line is None:
            lines.append(f"# {req.name}=={req.version}: not installable from the record{comment}")
        elif skip_local and req.is_local:
            lines.append(f"# {req.line}: a local directory; copy it in and install it{comment}")
        elif req.line.startswith("-e "):
            # pip forbids trailing comments on some option lines; keep the note on its own line
            if req.note:
                lines.append(f"# {req.name} {req.version}: {req.note}")
            lines.append(req.line)
        else:
            lines.append(req.line + comment)
    return "\n".join(lines) + "\n"
