"""Finding secrets in text: the scanner behind ``replicator release check`` and the code snapshot's
check of the files it takes (known key formats, then a context rule for random-looking values
next to a credential word)."""

from __future__ import annotations

import bisect
import heapq
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .core import _NEEDLES, SECRET_PATTERNS

__all__ = ["SecretHit", "find_secrets", "shannon_entropy"]


# ------------------------------------------------------------------ finding secrets in text
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
# user:password@host in a URL; documentation and local hosts (RFC 2606) hold no real account.
# The scheme is bounded (the longest registered ones have about 30 characters): unbounded, a text
# such as "a.a.a.a..." would be read to its end from every letter.
_URL_CREDENTIALS = re.compile(
    r"\b[a-zA-Z][a-zA-Z0-9+.\-]{0,39}://[^\s/@:'\"<>]*:(?P<secret>[^\s/@'\"<>]+)@(?P<host>[^\s/:'\"<>?#]+)"
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

# A long text (a one-line JSON file of megabytes) is matched in windows: one regex attempt then
# reads at most _WINDOW characters, however long the line, so a rule with an unbounded repeat
# costs at most _WINDOW per place it starts at instead of the rest of the text. A match that
# starts in the last _OVERLAP characters of a window is looked for again in the next window,
# where it has its full right context: matches up to _OVERLAP characters long (the PEM block of
# an 8192-bit key has about 6.5 KB) are found exactly as in one pass.
_WINDOW = 1 << 16
_OVERLAP = 1 << 13
# How far back a credential word's name is read (for the description only).
_NAME_LOOKBACK = 256


@dataclass(frozen=True)
class SecretHit:
    """One secret found in a text: its rule, offsets into the text and the value."""

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


def _matches(regex: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """The matches of ``regex.finditer(text)`` (those up to ``_OVERLAP`` long exactly), searched
    window by window so that no attempt reads more than ``_WINDOW`` characters."""
    n = len(text)
    pos = 0
    while pos < n:
        end = min(n, pos + _WINDOW)
        m = regex.search(text, pos, end)
        if m is None:
            if end == n:
                return
            pos = end - _OVERLAP
        elif end < n and m.start() > end - _OVERLAP:
            pos = m.start()  # judged again in a window that starts at the match
        else:
            yield m
            pos = max(m.end(), m.start() + 1)


class _Taken:
    """The spans already reported, sorted and disjoint: a new span is free when it meets none.

    The matches of one rule never overlap each other, so a rule's spans are only checked against
    the earlier rules' and merged in when the rule is done (``close_rule``): linear, where
    inserting each span into the sorted list would move the whole list for every finding.
    """

    def __init__(self) -> None:
        self.spans: list[tuple[int, int]] = []
        self.starts: list[int] = []
        self.pending: list[tuple[int, int]] = []

    def free(self, a: int, b: int) -> bool:
        i = bisect.bisect_left(self.starts, b)  # the spans that start before b
        return i == 0 or self.spans[i - 1][1] <= a

    def add(self, a: int, b: int) -> None:
        self.pending.append((a, b))

    def close_rule(self) -> None:
        if self.pending:
            self.spans = list(heapq.merge(self.spans, sorted(self.pending)))
            self.starts = [a for a, _ in self.spans]
            self.pending = []


def find_secrets(text: str) -> list[SecretHit]:
    """Every secret in ``text``, offsets into ``text``; overlapping matches keep the first rule.

    A long text (a one-line JSON file) is matched in overlapping windows, and the matches are
    checked against those already taken through a sorted index: the time grows with the length
    of the text and the number of findings, not with their product.
    """
    hits: list[SecretHit] = []
    taken = _Taken()
    free = taken.free
    lower = text.lower()

    for pattern in SECRET_PATTERNS:
        needles = _NEEDLES.get(pattern.rule)
        if needles is not None:
            words, folded = needles
            hay = lower if folded else text
            if not any(w in hay for w in words):
                continue
        group = "secret" if "secret" in pattern.regex.groupindex else 0
        for m in _matches(pattern.regex, text):
            a, b = m.span(group)
            value = m.group(group)
            if not free(a, b) or _is_placeholder(value, pattern.rule):
                continue
            taken.add(a, b)
            hits.append(SecretHit(pattern.rule, pattern.description, a, b, value))
        taken.close_rule()
    if "://" in text and "@" in text:
        for m in _matches(_URL_CREDENTIALS, text):
            a, b = m.span("secret")
            value = m["secret"]
            if not free(a, b) or _DOC_HOSTS.search(m["host"]) or _url_placeholder(value):
                continue
            taken.add(a, b)
            hits.append(
                SecretHit("url-credentials", "password in a URL (user:password@host)", a, b, value)
            )
        taken.close_rule()
    if any(w in lower for w in _GENERIC_NEEDLES):
        # lower() keeps offsets for all but a few non-ASCII letters; then fall back to (?i)
        same = len(lower) == len(text)
        for m in _matches(_GENERIC, lower) if same else _matches(_GENERIC_ANYCASE, text):
            a, b = m.span("secret")
            value = text[a:b].rstrip(".")
            if text[b : b + 1] in ("(", "["):
                continue  # a call or subscript such as base64.b64encode(...): code, not a value
            if free(a, b) and _looks_random(value):
                taken.add(a, b)
                start = m.start()
                floor = max(0, start - _NAME_LOOKBACK)
                while start > floor and text[start - 1] in _NAME_CHARS:
                    start -= 1
                name = text[start : m.start("secret")].strip(" \t'\"`=:,[]")[:40]
                desc = f"high-entropy value assigned to '{name}'"
                hits.append(SecretHit("high-entropy-secret", desc, a, a + len(value), value))
    return hits
