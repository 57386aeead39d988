"""Secret patterns and redaction, shared by capture (nothing secret reaches disk) and release scans.

One table of known key formats (``SECRET_PATTERNS``) serves both: capture replaces matches by
``<redacted>`` in environment variables, command lines, URLs and captured output; the release
scanner reports them. Names that look like credentials (KEY, TOKEN, SECRET, PASSWORD, ...) redact
a whole value whatever it looks like.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SECRET_PATTERNS",
    "SecretPattern",
    "clean_remote_url",
    "is_secret_name",
    "redact_argv",
    "redact_env",
    "redact_text",
    "redact_url",
    "secret_values",
]

REDACTED = "<redacted>"
"""What a redacted secret is replaced with."""


@dataclass(frozen=True)
class SecretPattern:
    """A known credential format: ``rule`` id, compiled ``regex`` and a human description."""

    rule: str
    regex: re.Pattern[str]
    description: str


def _p(rule: str, pattern: str, description: str, flags: int = 0) -> SecretPattern:
    return SecretPattern(rule, re.compile(pattern, flags), description)


# The formats their issuers publish, as public scanners match them (gitleaks' default rules,
# https://github.com/gitleaks/gitleaks/blob/master/config/gitleaks.toml; GitHub's token prefixes,
# https://github.blog/2021-04-05-behind-githubs-new-authentication-token-formats/).
# Each regex matches the secret itself (group 0 or group "secret").
SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    # The whole block when its END line is there (so capture redacts the key body too).
    _p(
        "private-key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[A-Za-z0-9+/=:,\-\s\\]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?",
        "PEM private key",
    ),
    _p("wandb-api-key-v1", r"\bwandb_v1_[A-Za-z0-9_]{20,}", "Weights & Biases API key"),
    _p(
        "wandb-api-key",
        # whitespace too: `wandb login KEY` is the documented command line
        r"(?i)wandb[^\n]{0,40}?[:=(,\s]\s*['\"]?(?P<secret>[0-9a-f]{40})\b",
        "Weights & Biases API key (40 hex characters next to 'wandb')",
    ),
    # base64 of '{"api_address":' and of '{"api_url":"' (newer tokens)
    _p(
        "neptune-api-token",
        r"\beyJhcGlf(?:YWRkcmVzcyI6|dXJsIjoi)[A-Za-z0-9+/=_\-]{20,}",
        "Neptune API token",
    ),
    _p(
        "comet-api-key",
        r"(?i)comet[^\n]{0,40}?[:=(,]\s*['\"]?(?P<secret>[A-Za-z0-9]{25})\b",
        "Comet API key (25 alphanumerics next to 'comet')",
    ),
    _p("huggingface-token", r"\bhf_[A-Za-z]{34}\b", "Hugging Face access token"),
    _p("huggingface-org-token", r"\bapi_org_[A-Za-z]{34}\b", "Hugging Face organisation token"),
    _p(
        "openai-api-key",
        r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{10,}T3BlbkFJ[A-Za-z0-9_\-]{10,}",
        "OpenAI key",
    ),
    _p(
        "openai-project-key",
        r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}",
        "OpenAI project, service-account or admin key",
    ),
    _p("aws-access-key-id", r"\b(?:AKIA|ASIA)[A-Z2-7]{16}\b", "AWS access key id"),
    _p(
        "aws-secret-access-key",
        r"(?i)aws[^\n]{0,20}?secret[^\n]{0,20}?[:=,]\s*['\"]?(?P<secret>[A-Za-z0-9/+]{40})"
        r"(?![A-Za-z0-9/+])",
        "AWS secret access key (40 characters next to 'aws ... secret')",
    ),
    _p("github-token", r"\b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{36}\b", "GitHub token"),
    _p("github-fine-grained-pat", r"\bgithub_pat_[A-Za-z0-9_]{22,}", "GitHub fine-grained token"),
    # no trailing \b: a key may end in '-', after which \b never matches before a quote
    _p("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])", "Google API key"),
    _p("slack-token", r"\bxox[bpaser]-[0-9A-Za-z\-]{10,}", "Slack token"),
    _p("slack-app-token", r"\bxapp-[0-9]-[0-9A-Za-z\-]{10,}", "Slack app-level token"),
)
"""The secret formats redaction and ``replicator release check`` look for, each named by its rule id."""

_SECRET_NAME = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|key|token|secret|password|passwd|pwd|credentials?|auth|"
    r"private[_\-]?key|access[_\-]?key|session[_\-]?key|netrc)(?:$|[_\-.])"
    r"|(?:apikey|accesskey|secretkey|authtoken|password|passwd|token|secret)",
    re.IGNORECASE,
)
# Names that match the pattern above but hold no secret.
_NOT_SECRET_NAMES = frozenset(
    {"KEYBOARD", "TOKENIZERS_PARALLELISM", "PYTHONHASHSEED", "SSH_AUTH_SOCK", "GPG_AGENT_INFO"}
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^\s/@'\"<>]+)@")
_QUERY_SECRET = re.compile(
    r"(?i)(?P<name>[?&;](?:[\w\-]*(?:key|token|secret|password|passwd|sig|signature|auth)[\w\-]*))="
    r"(?P<value>[^&#\s'\"]+)"
)


def is_secret_name(name: str) -> bool:
    """True when an environment variable or option name suggests it holds a credential."""
    if name.upper() in _NOT_SECRET_NAMES:
        return False
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """Strip user:password from a URL and redact secret-looking query parameters."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", url)
    return _QUERY_SECRET.sub(lambda m: f"{m['name']}={REDACTED}", text)


def clean_remote_url(url: str) -> str:
    """A git remote URL without credentials (``https://token@host/x`` -> ``https://host/x``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_url(url)
    if parts.scheme in {"http", "https", "ssh", "git", "ftp", "ftps"} and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        # ssh://git@host keeps its plain user name; a password or token is dropped.
        user = parts.netloc.rsplit("@", 1)[0]
        keep_user = parts.scheme == "ssh" and ":" not in user and len(user) < 20
        netloc = f"{user}@{host}" if keep_user else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return redact_url(url)


def redact_text(text: str) -> str:
    """Replace known key formats and URL credentials in free text by ``<redacted>``."""
    if not text:
        return text
    for pattern in SECRET_PATTERNS:
        if pattern.regex.groupindex.get("secret"):
            text = pattern.regex.sub(_replace_group, text)
        else:
            text = pattern.regex.sub(REDACTED, text)
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return text


def _replace_group(match: re.Match[str]) -> str:
    start, end = match.span("secret")
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + REDACTED + whole[end - offset :]


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with credential-named variables and secret-looking values redacted."""
    out: dict[str, str] = {}
    for name, value in env.items():
        if is_secret_name(name) and value:
            out[name] = REDACTED
        else:
            out[name] = redact_text(value)
    return out


_FLAG_WITH_VALUE = re.compile(r"^(?P<flag>--?[\w.\-]+)=(?P<value>.*)$", re.S)


def _redact_words(words: Sequence[str]) -> tuple[list[str], set[str]]:
    """Redact a sequence of words; also return the literal values that were removed."""
    out: list[str] = []
    removed: set[str] = set()
    redact_next = False
    for word in words:
        if redact_next:
            out.append(REDACTED)
            removed.add(word.strip("'\""))
            redact_next = False
            continue
        m = _FLAG_WITH_VALUE.match(word)
        if m and is_secret_name(m["flag"].lstrip("-")):
            out.append(f"{m['flag']}={REDACTED}")
            removed.add(m["value"].strip("'\""))
            continue
        if word.startswith("-") and not m and is_secret_name(word.lstrip("-")):
            out.append(word)
            redact_next = True
            continue
        # KEY=VALUE words (env assignments, Hydra-style overrides) with a secret-looking name.
        if "=" in word and not word.startswith("-"):
            name, _, value = word.partition("=")
            if name and is_secret_name(name.rsplit(".", 1)[-1]) and value:
                out.append(f"{name}={REDACTED}")
                removed.add(value.strip("'\""))
                continue
        out.append(redact_text(word))
    return out, removed


_SPACE = re.compile(r"(\s+)")


def _redact_command(argv: Sequence[str]) -> tuple[list[str], set[str]]:
    # A command handed to a shell (`sh -c 'python t.py --api-key X'`) hides its flags inside one
    # argument: every argument is split into words, redacted as one command line, and rejoined.
    pieces = [_SPACE.split(arg) for arg in argv]
    cleaned, removed = _redact_words([w for p in pieces for w in p[::2]])
    words = iter(cleaned)
    out = []
    for piece in pieces:
        rebuilt = list(piece)
        rebuilt[::2] = [next(words) for _ in piece[::2]]
        out.append("".join(rebuilt))
    return out, removed


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line with ``--api-key X``, ``--token=X``, URL credentials and keys redacted."""
    return _redact_command(argv)[0]


def secret_values(env: Mapping[str, str], argv: Sequence[str]) -> frozenset[str]:
    """The literal values that redaction removed from ``env`` and ``argv``.

    Capture also removes these from a command's output: a script that prints its own
    ``--api-key`` leaves no trace on disk, whatever the key looks like.
    """
    found = {value for name, value in env.items() if value and is_secret_name(name)}
    found |= _redact_command(argv)[1]
    # Short values ("1", "true") would shred unrelated output; they are not credentials anyway.
    return frozenset(v for v in found if len(v) >= 6)
