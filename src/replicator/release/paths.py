"""Hard-coded absolute paths in code, configs and notebook outputs.

A path such as ``/home/alice/data/cifar`` or ``/scratch/u123/ckpt`` works on one machine only:
whoever clones the repository has to hunt for it. The scanner looks for home directories
(``/home/USER``, ``/Users/USER``, ``/root``), cluster storage (``/scratch``, ``/gpfs``,
``/lustre``, ``/cluster``, ``/checkpoint``, ``/private/home``, ``/mnt``, ``/nfs``, ``/net``) and
Windows drive paths (``C:\\Users\\...``). System paths (``/usr``, ``/tmp``, ``/dev``, ``/proc``)
are fine and not reported. Prose (Markdown, reStructuredText, text) is not scanned.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from .findings import Finding, fingerprint, suppressed_rules
from .scan import notebook_texts

__all__ = ["CODE_SUFFIXES", "scan_paths"]

CODE_SUFFIXES = frozenset(
    {
        ".py", ".pyx", ".pyi", ".sh", ".bash", ".zsh", ".slurm", ".sbatch", ".pbs", ".r", ".jl",
        ".lua", ".m", ".c", ".cc", ".cpp", ".h", ".hpp", ".cu", ".java", ".scala", ".js", ".ts",
        ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".conf", ".env", ".ipynb", ".mk",
    }
)  # fmt: skip
CODE_NAMES = frozenset({"Makefile", "Dockerfile", "Snakefile", "Justfile"})

# The character before a path: start of line, space, quote, '=', '(', ',', ':', '[', '{'
_BEFORE = r"(?:^|(?<=[\s'\"=(,:\[{]))"
_SEGMENT = r"[A-Za-z0-9_.~\-]+"
_UNIX = re.compile(
    _BEFORE
    + r"(?P<path>/(?:home|Users|users)/"
    + _SEGMENT
    + r"(?:/[^\s'\"`,;:)\]}]*)?"
    + r"|/root(?:/[^\s'\"`,;:)\]}]*)?"
    + r"|/(?:scratch|gpfs|lustre|cluster|checkpoint|private/home|mnt|nfs|net|storage|"
    r"datasets|fsx|efs|hpc|work|projects)/" + _SEGMENT + r"(?:/[^\s'\"`,;:)\]}]*)?)"
)
# A drive path; `a:\n` in a string is a YAML key and a newline escape, not the drive A:.
_WINDOWS = re.compile(_BEFORE + r"(?P<path>[A-Za-z]:(?:\\\\?|/)(?![ntrfvab0]\b)(?:[A-Za-z0-9_.~ \-]+(?:\\\\?|/))*"
                      r"[A-Za-z0-9_.~\-]+)")  # fmt: skip
# Placeholders that document a path rather than hard-code one.
_PLACEHOLDER_USER = re.compile(
    r"^/(?:home|Users|users)/(?:USER|user|username|<[^>]*>|\$\w+|\$\{[^}]*\}|you|me|your_?name)"
    r"(?:/|$)"
)

FIX = (
    "Make the path relative to the project root (e.g. Path(__file__).parent / 'data'), or read it "
    "from a config value or an environment variable (DATA_DIR) with a documented default."
)


def _is_scanned(path: str) -> bool:
    p = PurePosixPath(path)
    return p.suffix.lower() in CODE_SUFFIXES or p.name in CODE_NAMES


def scan_paths(text: str, path: str) -> list[Finding]:
    """Hard-coded absolute paths in one code, config or notebook file (others are skipped)."""
    if not _is_scanned(path):
        return []
    if path.endswith(".ipynb"):
        texts = notebook_texts(text)
        if texts is not None:
            return _scan_notebook(text, texts, path)
    return list(_scan_lines(text.splitlines(), path))


def _scan_lines(lines: list[str], path: str, *, where: str = "") -> Iterator[Finding]:
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if "/" not in line and "\\" not in line and ":" not in line:
            continue
        if line.lstrip().startswith("#!"):
            continue  # shebang lines name interpreters
        windows = [(m.start(), m.end(), m["path"]) for m in _WINDOWS.finditer(line)]
        matches = [w[2] for w in windows]
        starts = [w[0] for w in windows]  # sorted and disjoint: a bisect finds the one around
        for m in _UNIX.finditer(line):
            i = bisect.bisect_right(starts, m.start()) - 1
            if i < 0 or m.start() >= windows[i][1]:
                matches.append(m["path"])
        matches = [m for m in matches if not _PLACEHOLDER_USER.match(m)]
        if not matches:
            continue
        silenced = suppressed_rules(line) or set()
        if silenced & {"*", "absolute-path"}:
            continue
        snippet = line.strip()[:130]  # once per line: a one-line JSON file may be megabytes
        for value in matches:
            key = f"{number}:{value}"
            if key in seen:
                continue
            seen.add(key)
            yield Finding(
                file=path,
                line=number,
                rule="absolute-path",
                severity="warning",
                message=f"hard-coded absolute path '{value[:80]}'{where}",
                snippet=snippet,
                fix=FIX,
                fingerprint=fingerprint("absolute-path", path, value),
            )


def _scan_notebook(raw: str, texts: Iterator[tuple[str, str]], path: str) -> list[Finding]:
    import json

    raw_lines = raw.splitlines()
    out: list[Finding] = []
    cursor = 0
    for text, where in texts:
        lines = text.splitlines()
        for finding in _scan_lines(lines, path, where=where):
            assert finding.line is not None
            needle = json.dumps(lines[finding.line - 1].strip()[:200])[1:-1]
            line = None
            for i in range(cursor, len(raw_lines)):
                if needle and needle in raw_lines[i]:
                    line, cursor = i + 1, i
                    break
            out.append(Finding(**{**finding.as_dict(), "line": line}))
    return out
