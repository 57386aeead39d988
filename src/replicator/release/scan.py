"""Secret scanning for ``release check``: known key formats, high-entropy values next to credential
words, credential files, notebooks (sources and outputs) and, on request, every commit in history.

Known formats come from :data:`replicator.redact.SECRET_PATTERNS`, the table that capture-time
redaction uses too, and the matching itself is :func:`replicator.redact.find_secrets`, which the
code snapshot of a run also uses to leave out files with secrets: what replicator hides when it
records a run is what it looks for before a release. Two kinds of matches are dropped on purpose: documented example keys (AWS's
``...EXAMPLE`` values) and placeholders (``hf_xxxx...``, ``<your-key>``, ``${TOKEN}``), which carry
no secret. A match is reported with its value masked (see :func:`~.findings.mask`).
"""

from __future__ import annotations

import bisect
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

from ..capture.git import git_stream
from ..redact import SecretHit, find_secrets, redact_text, shannon_entropy
from .findings import Finding, fingerprint, mask, suppressed_rules

__all__ = [
    "CREDENTIAL_FILE_FIX",
    "ROTATE_FIX",
    "credential_file_findings",
    "is_credential_file",
    "notebook_texts",
    "scan_history",
    "scan_secrets",
    "shannon_entropy",
]

ROTATE_FIX = (
    "Revoke and rotate this key at its provider first (a published key is compromised even after "
    "it is deleted), then read it from an environment variable or an ignored config file."
)
HISTORY_FIX = (
    ROTATE_FIX + " The key is in git history: rewrite history (`git filter-repo --replace-text "
    "FILE` or BFG) before pushing, or publish a clean single-commit copy with "
    "`replicator release export DEST`."
)
CREDENTIAL_FILE_FIX = (
    "Remove it from the repository (`git rm --cached FILE`), add it to .gitignore and rotate "
    "every credential it held."
)

_PEM_BODY = re.compile(r"[A-Za-z0-9+/=]{40,}")

_CREDENTIAL_NAMES = {
    ".env": "environment file with credentials",
    ".netrc": "netrc file (W&B writes its API key here)",
    "_netrc": "netrc file",
    "kaggle.json": "Kaggle API credentials",
    ".git-credentials": "git credential store",
    ".pypirc": "PyPI upload credentials",
    "id_rsa": "SSH private key",
    "id_dsa": "SSH private key",
    "id_ecdsa": "SSH private key",
    "id_ed25519": "SSH private key",
    "credentials": "cloud credentials file",
}
_CREDENTIAL_SUFFIXES = {".p12": "PKCS#12 key store", ".pfx": "PKCS#12 key store"}
_ENV_TEMPLATES = (".example", ".sample", ".template", ".dist", ".defaults")
MAX_SCAN_BYTES = 20 * 1024 * 1024


def _masked_line(line: str, spans: list[tuple[int, int, str]]) -> tuple[str, dict[int, int]]:
    """``line`` with every secret on it masked, and where each secret starts in the result.

    Built once per line, not once per finding: a one-line JSON file may hold thousands.
    """
    pieces: list[str] = []
    where: dict[int, int] = {}
    cursor = 0
    length = 0
    for a, b, value in sorted(spans):
        if a < cursor:
            continue
        pieces.append(line[cursor:a])
        length += a - cursor
        where[a] = length
        shown = mask(value)
        pieces.append(shown)
        length += len(shown)
        cursor = b
    pieces.append(line[cursor:])
    return "".join(pieces), where


def _snippet(hit: SecretHit, masked: str, where: dict[int, int]) -> str:
    """The masked line around ``hit`` (not only this finding's secret is masked, every one is)."""
    if hit.rule == "private-key":
        header = hit.value.split("-----", 2)
        return f"-----{header[1]}----- (key body not shown)" if len(header) > 2 else "PEM block"
    start = max(0, where.get(hit.start, 0) - 50)
    return redact_text(masked[start : start + 130].strip())


def scan_secrets(text: str, path: str) -> list[Finding]:
    """Secrets in the text of one file (a notebook's sources and outputs when it is .ipynb)."""
    if path.endswith(".ipynb"):
        notebook = _scan_notebook(text, path)
        if notebook is not None:
            return notebook
    return list(_scan_lines(text.splitlines(), path))


def _scan_lines(
    lines: list[str],
    path: str,
    *,
    where: str = "",
    line_of: dict[int, int] | None = None,
    commit: str | None = None,
) -> Iterator[Finding]:
    text = "\n".join(lines)
    hits = find_secrets(text)
    if not hits:
        return
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    spans: dict[int, list[tuple[int, int, str]]] = {}
    for hit in hits:
        index = bisect.bisect_right(starts, hit.start) - 1
        a = hit.start - starts[index]
        b = min(hit.end - starts[index], len(lines[index]))
        spans.setdefault(index, []).append((a, b, hit.value))
    # Per line, not per finding: the suppression comments and the masked text.
    silenced: dict[int, set[str]] = {}
    masked: dict[int, tuple[str, dict[int, int]]] = {}
    for hit in sorted(hits, key=lambda h: h.start):
        index = bisect.bisect_right(starts, hit.start) - 1
        line = lines[index]
        if index not in silenced:
            previous = lines[index - 1] if index > 0 else ""
            silenced[index] = suppressed_rules(line, previous) or set()
        if silenced[index] & {"*", "secret", hit.rule}:
            continue
        severity, message = hit.severity, hit.description
        if hit.rule == "private-key":
            after = text[hit.start : hit.start + len(hit.value) + 600]
            if not _PEM_BODY.search(after.split("-----", 2)[-1]):
                severity = "warning"
                message += " header without a key body (documentation?)"
        offset = starts[index]
        local = SecretHit(
            hit.rule,
            hit.description,
            hit.start - offset,
            min(hit.end - offset, len(line)),
            hit.value,
        )
        if index not in masked:
            masked[index] = _masked_line(line, spans[index])
        yield Finding(
            file=path,
            line=(line_of or {}).get(index, index + 1),
            rule=hit.rule,
            severity=severity,
            message=f"{message}{where}",
            snippet=_snippet(local, *masked[index]),
            fix=HISTORY_FIX if commit else ROTATE_FIX,
            # whitespace-free for PEM blocks: a notebook or a diff may re-wrap the same key
            fingerprint=fingerprint(hit.rule, path, "".join(hit.value.split())),
            commit=commit,
        )


# ------------------------------------------------------------------ notebooks
def notebook_texts(raw: str) -> Iterator[tuple[str, str]] | None:
    """``(text, where)`` for each cell source and text output of a notebook; None if not JSON."""
    try:
        nb = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None
    return _iter_notebook(nb)


def _join(value: object) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    if isinstance(value, (dict, int, float)):
        return json.dumps(value, indent=1)
    return str(value) if value is not None else ""


def _iter_notebook(nb: dict) -> Iterator[tuple[str, str]]:
    for number, cell in enumerate(nb["cells"], start=1):
        if not isinstance(cell, dict):
            continue
        yield _join(cell.get("source")), f" (cell {number} source)"
        for output in cell.get("outputs") or []:
            if not isinstance(output, dict):
                continue
            where = f" (cell {number} output)"
            if "text" in output:
                yield _join(output["text"]), where
            for value in (output.get("data") or {}).values():
                yield _join(value), where
            if output.get("traceback"):
                yield _join([f"{t}\n" for t in output["traceback"]]), where


def _raw_line_finder(raw: str) -> Callable[[str], int | None]:
    """Map a text line of a cell back to its line in the .ipynb file (first unused occurrence)."""
    raw_lines = raw.splitlines()
    used: dict[str, int] = {}

    def find(fragment: str) -> int | None:
        escaped = json.dumps(fragment.strip())[1:-1]
        if not escaped:
            return None
        start = used.get(escaped, 0)
        for i in range(start, len(raw_lines)):
            if escaped in raw_lines[i]:
                used[escaped] = i + 1
                return i + 1
        return None

    return find


def _scan_notebook(raw: str, path: str) -> list[Finding] | None:
    texts = notebook_texts(raw)
    if texts is None:
        return None
    find = _raw_line_finder(raw)
    out: list[Finding] = []
    for text, where in texts:
        lines = text.splitlines()
        for finding in _scan_lines(lines, path, where=where):
            assert finding.line is not None
            raw_line = find(lines[finding.line - 1][:200])
            out.append(_with_line(finding, raw_line))
    return out


def _with_line(finding: Finding, line: int | None) -> Finding:
    return Finding(**{**finding.as_dict(), "line": line})


# ------------------------------------------------------------------ credential files
def is_credential_file(path: str) -> str | None:
    """A description when ``path`` names a credential file that must never be committed."""
    p = PurePosixPath(path)
    name = p.name
    if (name == ".env" or name.startswith(".env.")) and not name.endswith(_ENV_TEMPLATES):
        return _CREDENTIAL_NAMES[".env"]
    if name == "credentials" and p.parent.name not in (".aws", ".azure", "gcloud"):
        return None
    if name in _CREDENTIAL_NAMES and name != ".env":
        return _CREDENTIAL_NAMES[name]
    return _CREDENTIAL_SUFFIXES.get(p.suffix.lower())


def credential_file_findings(files: Iterable[str], tracked: set[str] | None) -> list[Finding]:
    """Findings for credential files among ``files`` (``tracked``: git's tracked set, or None)."""
    out = []
    for path in files:
        what = is_credential_file(path)
        if not what:
            continue
        if tracked is None:
            state = "would be published"
        elif path in tracked:
            state = "is tracked in git"
        else:
            state = "is not ignored by git (`git add -A` would commit it)"
        out.append(
            Finding.of_file(
                path,
                rule="credential-file",
                severity="error",
                message=f"{what} {state}",
                fix=CREDENTIAL_FILE_FIX.replace("FILE", path),
            )
        )
    return out


# ------------------------------------------------------------------ history
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,\d+)? @@")


def scan_history(root: str | Path, *, timeout: float = 600.0) -> list[Finding]:
    """Secrets added by any commit reachable from any ref (``git log -p --all``), added lines only.

    Each secret is reported once, at the first (oldest) commit that added it to a file.
    """
    args = (
        "-c",
        "core.quotepath=off",
        "log",
        "--all",
        "--reverse",
        "-p",
        "-U0",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
        "--format=%x00commit %H",
    )
    findings: dict[str, Finding] = {}
    commit = ""
    path: str | None = None
    lineno = 0
    block: list[str] = []
    numbers: dict[int, int] = {}

    def flush() -> None:
        if block and path is not None:
            for f in _scan_lines(block, path, line_of=dict(numbers), commit=commit):
                findings.setdefault(f.fingerprint, f)
        block.clear()
        numbers.clear()

    deadline = time.monotonic() + timeout
    # Streamed: the patch of a whole history can be far larger than memory should hold.
    with git_stream(root, *args) as out:
        for raw_bytes in out:
            if time.monotonic() > deadline:
                break  # leaving the block stops git
            raw = raw_bytes.decode("utf-8", "replace").rstrip("\r\n")
            if raw.startswith("\x00commit "):
                flush()
                commit, path = raw[8:].strip(), None
            elif raw.startswith("+++ "):
                flush()
                target = raw[4:]
                path = target[2:] if target.startswith("b/") else None
            elif raw.startswith("@@"):
                flush()
                m = _HUNK.match(raw)
                lineno = int(m["start"]) if m else 0
            elif raw.startswith("+") and path is not None:
                text = raw[1:]
                if path.endswith(".ipynb"):
                    text = _json_string_line(text)
                numbers[len(block)] = lineno
                block.append(text)
                lineno += 1
    flush()
    return list(findings.values())


def _json_string_line(text: str) -> str:
    """The decoded string of a notebook JSON line such as ``  "x = 1\\n",``."""
    candidate = text.strip().rstrip(",")
    if candidate.startswith('"') and candidate.endswith('"'):
        try:
            value = json.loads(candidate)
        except ValueError:
            return text
        return str(value).rstrip("\n")
    return text
