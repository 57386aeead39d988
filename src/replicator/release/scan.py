"""Secret scanning for ``release check``: known key formats, high-entropy values next to credential
words, credential files, notebooks (sources and outputs) and, on request, every commit in history.

Known formats come from :data:`replicator.redact.SECRET_PATTERNS`, the table that capture-time
redaction uses too, so what replicator hides when it records a run is what it looks for before a
release. Two kinds of matches are dropped on purpose: documented example keys (AWS's
``...EXAMPLE`` values) and placeholders (``hf_xxxx...``, ``<your-key>``, ``${TOKEN}``), which carry
no secret. A match is reported with its value masked (see :func:`~.findings.mask`).
"""

from __future__ import annotations

import bisect
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..capture.git import git_stream
from ..redact import SECRET_PATTERNS, redact_text
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

# Context-based rule: a credential word, an assignment, then a random-looking value.
_KEYWORD = (
    r"(?:api[_\-]?key|apikey|secret|token(?!i[sz])|passw(?:or)?d|pwd|credential|"
    r"auth[_\-]?key|access[_\-]?key|private[_\-]?key|client[_\-]?secret)"
)
# Keyword first: a pattern that starts with [\w.-]* would retry at every character of the text.
# It runs case-sensitively on the lower-cased text (5x faster than (?i)); the value is then read
# from the original text at the same offsets.
_GENERIC_TAIL = (
    r"[\w.\-]*['\"]?\]?(?:[ \t]*(?::=|=>|[=:,])[ \t]*|[ \t]+)(?:[rbuf]?['\"]|`)?"
    r"(?P<secret>[A-Za-z0-9+/=_\-.~]{16,})"
)
_GENERIC = re.compile(_KEYWORD + _GENERIC_TAIL)
_GENERIC_ANYCASE = re.compile(r"(?i)" + _KEYWORD + _GENERIC_TAIL)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
# Literal fragments one of which every match of a rule contains: a rule runs only on a text that
# holds one, since a substring test is far cheaper than a regex pass. Rules not listed always run.
_NEEDLES: dict[str, tuple[tuple[str, ...], bool]] = {  # rule -> (fragments, case-insensitive)
    "private-key": (("PRIVATE KEY",), False),
    "wandb-api-key-v1": (("wandb_v1_",), False),
    "wandb-api-key": (("wandb",), True),
    "neptune-api-token": (("eyJhcGlf",), False),
    "comet-api-key": (("comet",), True),
    "huggingface-token": (("hf_",), False),
    "huggingface-org-token": (("api_org_",), False),
    "openai-api-key": (("sk-",), False),
    "openai-project-key": (("sk-",), False),
    "aws-access-key-id": (("AKIA", "ASIA"), False),
    "aws-secret-access-key": (("aws",), True),
    "github-token": (("ghp_", "gho_", "ghs_", "ghu_", "ghr_"), False),
    "github-fine-grained-pat": (("github_pat_",), False),
    "google-api-key": (("AIza",), False),
    "slack-token": (("xox",), False),
    "slack-app-token": (("xapp-",), False),
}
# user:password@host in a URL; documentation and local hosts (RFC 2606) hold no real account.
_URL_CREDENTIALS = re.compile(
    r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/@:'\"<>]*:(?P<secret>[^\s/@'\"<>]+)@(?P<host>[^\s/:'\"<>?#]+)"
)
_DOC_HOSTS = re.compile(
    r"(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|localhost|local)$|^127\.|^0\.0\.0\.0$",
    re.IGNORECASE,
)
_URL_PLACEHOLDERS = frozenset({"password", "pass", "passwd", "pwd", "secret", "token", "x", "xxx"})
_GENERIC_NEEDLES = ("key", "secret", "token", "passw", "pwd", "credential")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_HASH_PREFIX = re.compile(r"^(?:sha1|sha224|sha256|sha384|sha512|md5|blake2b?|blake3|xxh\w*)[:\-]")
_PLACEHOLDER = re.compile(
    r"example|xxxx|your[_\-]|changeme|change[_\-]me|placeholder|dummy|redacted|\*\*\*\*|fake",
    re.IGNORECASE,
)
# Documented example credentials (AWS's documentation values all contain "EXAMPLE").
_DOC_EXAMPLE = re.compile(r"EXAMPLE")
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


@dataclass(frozen=True)
class _Hit:
    rule: str
    description: str
    start: int
    end: int
    value: str
    severity: str = "error"


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` (0 for an empty string)."""
    if not value:
        return 0.0
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _looks_random(value: str) -> bool:
    """Whether a value next to a credential word looks like a real secret, not a name or hash."""
    value = value.rstrip(".")
    if len(value) < 16 or _UUID.match(value) or _HASH_PREFIX.match(value):
        return False
    if _PLACEHOLDER.search(value) or _DOC_EXAMPLE.search(value):
        return False
    segments = [s for s in re.split(r"[/._\-~+=]", value) if s]
    if len(segments) > 1 and all(s.isalpha() or s.isdigit() for s in segments):
        return False  # a dotted name, path or URL-ish identifier made of words
    has_digit = any(c.isdigit() for c in value)
    has_lower = any(c.islower() for c in value)
    has_upper = any(c.isupper() for c in value)
    entropy = shannon_entropy(value)
    if _HEX.match(value):
        return len(value) >= 20 and has_digit and (has_lower or has_upper) and entropy >= 3.0
    threshold = min(4.0, 2.5 + 0.05 * len(value))
    if has_digit and (has_lower or has_upper):
        return entropy >= threshold
    return has_lower and has_upper and entropy >= 4.0


def _url_placeholder(value: str) -> bool:
    return (
        value.lower() in _URL_PLACEHOLDERS
        or value.startswith(("$", "{", "<", "%", "*"))
        or bool(_PLACEHOLDER.search(value))
    )


def _is_placeholder(value: str, rule: str) -> bool:
    if rule == "private-key":
        return False
    if _DOC_EXAMPLE.search(value) or _PLACEHOLDER.search(value):
        return True
    # hf_xxxxxxxx..., AKIAAAAAAAAA...: too few distinct characters to be a generated key
    return len(set(value)) < 8


def _text_hits(text: str) -> list[_Hit]:
    """Every secret in ``text``, offsets into ``text``; overlapping matches keep the first rule."""
    hits: list[_Hit] = []
    taken: list[tuple[int, int]] = []
    lower = text.lower()

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for pattern in SECRET_PATTERNS:
        needles = _NEEDLES.get(pattern.rule)
        if needles is not None:
            words, folded = needles
            hay = lower if folded else text
            if not any(w in hay for w in words):
                continue
        group = "secret" if "secret" in pattern.regex.groupindex else 0
        for m in pattern.regex.finditer(text):
            a, b = m.span(group)
            value = m.group(group)
            if not free(a, b) or _is_placeholder(value, pattern.rule):
                continue
            taken.append((a, b))
            hits.append(_Hit(pattern.rule, pattern.description, a, b, value))
    if "://" in text and "@" in text:
        for m in _URL_CREDENTIALS.finditer(text):
            a, b = m.span("secret")
            value = m["secret"]
            if not free(a, b) or _DOC_HOSTS.search(m["host"]) or _url_placeholder(value):
                continue
            taken.append((a, b))
            hits.append(
                _Hit("url-credentials", "password in a URL (user:password@host)", a, b, value)
            )
    if any(w in lower for w in _GENERIC_NEEDLES):
        # lower() keeps offsets for all but a few non-ASCII letters; then fall back to (?i)
        same = len(lower) == len(text)
        for m in _GENERIC.finditer(lower) if same else _GENERIC_ANYCASE.finditer(text):
            a, b = m.span("secret")
            value = text[a:b].rstrip(".")
            if text[b : b + 1] in ("(", "["):
                continue  # a call or subscript such as base64.b64encode(...): code, not a value
            if free(a, b) and _looks_random(value):
                taken.append((a, b))
                start = m.start()
                while start > 0 and text[start - 1] in _NAME_CHARS:
                    start -= 1
                name = text[start : m.start("secret")].strip(" \t'\"`=:,[]")[:40]
                desc = f"high-entropy value assigned to '{name}'"
                hits.append(_Hit("high-entropy-secret", desc, a, a + len(value), value))
    return hits


def _snippet(line: str, hit: _Hit, spans: list[tuple[int, int, str]]) -> str:
    """The line around ``hit`` with every secret on it masked (not only this finding's)."""
    if hit.rule == "private-key":
        header = hit.value.split("-----", 2)
        return f"-----{header[1]}----- (key body not shown)" if len(header) > 2 else "PEM block"
    pieces: list[str] = []
    cursor = 0
    here = 0
    for a, b, value in sorted(spans):
        if a < cursor:
            continue
        pieces.append(line[cursor:a])
        if a == hit.start:
            here = sum(len(p) for p in pieces)
        pieces.append(mask(value))
        cursor = b
    pieces.append(line[cursor:])
    masked = "".join(pieces)
    start = max(0, here - 50)
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
    hits = _text_hits(text)
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
    for hit in sorted(hits, key=lambda h: h.start):
        index = bisect.bisect_right(starts, hit.start) - 1
        line = lines[index]
        previous = lines[index - 1] if index > 0 else ""
        silenced = suppressed_rules(line, previous) or set()
        if silenced & {"*", "secret", hit.rule}:
            continue
        severity, message = hit.severity, hit.description
        if hit.rule == "private-key":
            after = text[hit.start : hit.start + len(hit.value) + 600]
            if not _PEM_BODY.search(after.split("-----", 2)[-1]):
                severity = "warning"
                message += " header without a key body (documentation?)"
        offset = starts[index]
        local = _Hit(
            hit.rule,
            hit.description,
            hit.start - offset,
            min(hit.end - offset, len(line)),
            hit.value,
        )
        yield Finding(
            file=path,
            line=(line_of or {}).get(index, index + 1),
            rule=hit.rule,
            severity=severity,
            message=f"{message}{where}",
            snippet=_snippet(line, local, spans[index]),
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
            Finding(
                file=path,
                line=None,
                rule="credential-file",
                severity="error",
                message=f"{what} {state}",
                snippet="",
                fix=CREDENTIAL_FILE_FIX.replace("FILE", path),
                fingerprint=fingerprint("credential-file", path, ""),
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
