"""What a release check reports: findings, their rules, inline suppressions and the hash baseline.

A :class:`Finding` names a file, a line, a rule id, a severity, a snippet in which any secret is
masked, and how to fix it. Its ``fingerprint`` is a SHA-256 over (rule, file, matched value), so a
baseline file can list accepted findings without ever storing a secret, and a finding stays
accepted when lines move.

Suppressions, on the line of the finding (or, for a whole-file finding, anywhere in its first
lines):

- ``replicator: ignore`` or ``replicator: ignore[rule-id, other-rule]``;
- ``pragma: allowlist secret`` (detect-secrets) and ``gitleaks:allow`` (gitleaks), for secrets;
- ``pragma: allowlist nextline secret`` on the line before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._util.io import atomic_write_json
from ..errors import UsageError

__all__ = [
    "SEVERITIES",
    "Finding",
    "fingerprint",
    "load_baseline",
    "mask",
    "severity_rank",
    "suppressed_rules",
    "write_baseline",
]

SEVERITIES = ("note", "warning", "error")
BASELINE_VERSION = 1
DEFAULT_BASELINE = ".replicator-baseline.json"


def severity_rank(severity: str) -> int:
    """0 for note, 1 for warning, 2 for error."""
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Finding:
    """One problem found by ``release check``.

    ``file`` is a POSIX path relative to the checked root (a repository-level finding names the
    file that is missing, e.g. ``LICENSE``); ``line`` is 1-based or None; ``commit`` is set for a
    finding that lives only in git history; ``snippet`` never holds a secret in full.
    """

    file: str
    line: int | None
    rule: str
    severity: str
    message: str
    snippet: str
    fix: str
    fingerprint: str
    commit: str | None = None

    @classmethod
    def of_file(cls, file: str, *, rule: str, severity: str, message: str, fix: str) -> Finding:
        """A finding about a whole file (no line, no snippet), or about one that is missing."""
        return cls(
            file=file,
            line=None,
            rule=rule,
            severity=severity,
            message=message,
            snippet="",
            fix=fix,
            fingerprint=fingerprint(rule, file, ""),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def location(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} @ {self.commit[:10]}" if self.commit else where


def fingerprint(rule: str, file: str, value: str) -> str:
    """SHA-256 hex of (rule, file, matched value): identifies a finding without holding it."""
    payload = f"{rule}\0{file}\0{value}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(payload).hexdigest()


def mask(secret: str) -> str:
    """A secret shortened to its first 4 characters and stars: never the whole value."""
    keep = 4 if len(secret) >= 12 else 0
    return secret[:keep] + "*" * min(8, max(4, len(secret) - keep))


_IGNORE = re.compile(r"replicator:\s*ignore(?:\[(?P<rules>[^\]]*)\])?", re.IGNORECASE)
_ALLOW_SECRET = re.compile(r"pragma:\s*allowlist\s+secret|gitleaks:allow", re.IGNORECASE)
_ALLOW_NEXT = re.compile(r"pragma:\s*allowlist\s+nextline\s+secret", re.IGNORECASE)


def suppressed_rules(line: str, previous: str = "") -> set[str] | None:
    """Rules silenced on ``line``: None for none, ``{"*"}`` for all, ``{"secret"}`` for secrets."""
    rules: set[str] = set()
    m = _IGNORE.search(line)
    if m:
        listed = m["rules"]
        if not listed:
            return {"*"}
        rules.update(r.strip() for r in listed.split(",") if r.strip())
    if _ALLOW_SECRET.search(line) or _ALLOW_NEXT.search(previous):
        rules.add("secret")
    return rules or None


def load_baseline(path: str | os.PathLike[str]) -> frozenset[str]:
    """The accepted finding fingerprints of a baseline file (empty when it does not exist)."""
    p = Path(path)
    if not p.is_file():
        return frozenset()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        hashes = data["fingerprints"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"Baseline {p} cannot be read ({exc}). Recreate it with "
            "`replicator release check --update-baseline`."
        ) from exc
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
        raise UsageError(f"Baseline {p}: 'fingerprints' must be a list of SHA-256 hex strings.")
    return frozenset(hashes)


def write_baseline(path: str | os.PathLike[str], findings: list[Finding]) -> Path:
    """Write the fingerprints (hashes only, never secrets) of ``findings`` to ``path``."""
    data = {
        "version": BASELINE_VERSION,
        "tool": "replicator release check",
        "note": "SHA-256 of (rule, file, matched value) of accepted findings; holds no secret.",
        "fingerprints": sorted({f.fingerprint for f in findings}),
    }
    return atomic_write_json(path, data)
