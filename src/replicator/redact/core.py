"""Redaction: what capture replaces by ``<redacted>`` (environment variables, command lines, URLs,
config values, captured output) and the table of known key formats it shares with the scanner."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SECRET_PATTERNS",
    "LineRedactor",
    "SecretPattern",
    "clean_remote_url",
    "is_secret_name",
    "redact_argv",
    "redact_config",
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
        # A git commit id is 40 hex characters too: the words between 'wandb' and the value must
        # name a key (WANDB_API_KEY=, wandb.login(key=...), `wandb login KEY`, the documented
        # command line) and hold no commit word (`wandb run of commit HEX`, `...?commit=HEX`).
        r"(?i)wandb[\w.\-\[\]'\" \t]{0,30}?(?:key|login|token|auth|secret|passw)"
        r"(?:(?!commit|sha|hash|rev|/)[^\n]){0,30}?[:=(,\s]\s*['\"]?"
        r"(?<![0-9a-f])(?P<secret>[0-9a-f]{40})\b",
        "Weights & Biases API key (40 hex characters after 'wandb ... key' or 'wandb login')",
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

# SECRET_PATTERNS as redaction reads them: (regex, fragments or None, case-insensitive).
_RULES = [(p.regex, *_NEEDLES.get(p.rule, (None, False))) for p in SECRET_PATTERNS]

_SECRET_NAME = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|key|token|secret|password|passwd|pwd|pass|credentials?|auth|"
    r"private[_\-]?key|access[_\-]?key|session[_\-]?key|netrc)(?:$|[_\-.])"
    r"|(?:apikey|accesskey|secretkey|authtoken|password|passwd|passphrase|token|secret)",
    re.IGNORECASE,
)
# Names that match the pattern above but hold no secret. PWD and OLDPWD are the shell's working
# directories (pwd as in MYSQL_PWD is a password): as secrets they shredded every output line that
# shows a path in the project.
_NOT_SECRET_NAMES = frozenset(
    {
        "KEYBOARD",
        "TOKENIZERS_PARALLELISM",
        "PYTHONHASHSEED",
        "SSH_AUTH_SOCK",
        "GPG_AGENT_INFO",
        "PWD",
        "OLDPWD",
    }
)
# Parts of names that hold no secret (ML configs are full of them): removed before the test, so
# that `max_tokens`, `tokenizer`, `pad_token_id` or `pass_rate` keep their values while
# `tokenizer_hub_token` does not.
_NOT_SECRET_PART = re.compile(
    r"tokeni[sz][a-z]*|(?:^|[_\-.])(?:max|min|num|n|total)?[_\-.]?tokens(?=$|[_\-.])"
    r"|token[_\-.]?(?:ids?|count|len|length|type|types)(?=$|[_\-.])"
    r"|(?:pad|eos|bos|unk|sep|cls|mask|special|additional|start|end)[_\-.]?token"
    r"|pass[_\-.]?(?:rate|at|k|through|count|num)(?=$|[_\-.])",
    re.IGNORECASE,
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
    return bool(_SECRET_NAME.search(_NOT_SECRET_PART.sub("", name)))


def _is_credential(name: str, value: str) -> bool:
    """Whether the variable ``name=value`` holds a credential (its value is then redacted).

    A credential-named variable whose value is the path of an existing file or directory
    (``GOOGLE_APPLICATION_CREDENTIALS``, ``DB_PASSWORD_FILE``) says where a credential is, not
    what it is: the path stays, as every other path does.
    """
    if not value:
        return False
    if is_secret_name(name):
        return not _is_existing_path(value)
    return _holds_credential(value)


def _is_existing_path(value: str) -> bool:
    if not value.startswith("/") or "\n" in value:
        return False
    try:
        return os.path.exists(value)
    except (OSError, ValueError):
        return False


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
    lower = text.lower()
    for regex in _candidates(text, lower):
        if "secret" in regex.groupindex:
            text = regex.sub(_replace_group, text)
        else:
            text = regex.sub(REDACTED, text)
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return text


def _candidates(text: str, lower: str) -> list[re.Pattern[str]]:
    """The rules whose fragments ``text`` holds (a substring test is far cheaper than a regex
    pass over every line, and this loop than a generator per rule)."""
    found = []
    for regex, words, folded in _RULES:
        if words is not None:
            haystack = lower if folded else text
            for word in words:
                if word in haystack:
                    break
            else:
                continue
        found.append(regex)
    return found


def _replace_group(match: re.Match[str]) -> str:
    start, end = match.span("secret")
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + REDACTED + whole[end - offset :]


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with credential-named variables and secret-looking values redacted.

    A multi-line or JSON value that holds a known key format (a service-account JSON, a PEM key)
    is a credential as a whole; a JSON list of arguments (``REPLICATOR_OVERRIDES``) is redacted
    like a command line.
    """
    out: dict[str, str] = {}
    for name, value in env.items():
        if _is_credential(name, value):
            out[name] = REDACTED
        else:
            out[name] = _redact_value(value)
    return out


def _holds_credential(value: str) -> bool:
    """A multi-line or JSON value in which a known key format appears."""
    if "\n" not in value and not value.lstrip().startswith("{"):
        return False
    return redact_text(value) != value


def _redact_value(value: str) -> str:
    if value.startswith("[") and value.endswith("]") and "=" in value:
        words = _json_words(value)
        if words:
            cleaned = redact_argv(words)
            return value if cleaned == words else json.dumps(cleaned)
    return redact_text(value)


def _json_words(value: str) -> list[str]:
    """The strings of a JSON list of strings (empty for anything else)."""
    try:
        words = json.loads(value)
    except ValueError:
        return []
    if isinstance(words, list) and all(isinstance(w, str) for w in words):
        return words
    return []


_FLAG_WITH_VALUE = re.compile(r"^(?P<flag>--?[\w.\-]+)=(?P<value>.*)$", re.S)


def _is_secret_flag(flag: str) -> bool:
    # `-p` is the password flag of mysql, sshpass, psql-like tools and many scripts; as a config
    # key or variable name a lone "p" is a probability, so only the short flag counts.
    return flag == "-p" or is_secret_name(flag.lstrip("-"))


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
        if m and _is_secret_flag(m["flag"]):
            out.append(f"{m['flag']}={REDACTED}")
            removed.add(m["value"].strip("'\""))
            continue
        if word.startswith("-") and not m and _is_secret_flag(word):
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


def secret_values(env: Mapping[str, str], argv: Sequence[str] = ()) -> frozenset[str]:
    """The literal values that redaction removed from ``env`` and ``argv``.

    Capture also removes these from a command's output: a script that prints its own
    ``--api-key`` leaves no trace on disk, whatever the key looks like. A multi-line value (a
    PEM key, a service-account JSON) also gives each of its lines, and a JSON object each of its
    string values, since a script prints them one at a time as often as whole.
    """
    found: set[str] = set()
    for name, value in env.items():
        if _is_credential(name, value):
            found |= _pieces(value)
        elif value.startswith("[") and "=" in value:
            # a JSON list of arguments ($REPLICATOR_OVERRIDES: `--set +api_key=...`)
            found |= _redact_command(_json_words(value))[1]
    for value in _redact_command(argv)[1]:
        found |= _pieces(value)
    # Short values ("1", "true") would shred unrelated output; they are not credentials anyway.
    return frozenset(v for v in found if len(v) >= _MIN_SECRET_LENGTH)


_MIN_SECRET_LENGTH = 6


def _pieces(value: str) -> set[str]:
    """``value`` itself, its lines when it has several, and the strings of a JSON object."""
    out = {value, value.strip()}
    if value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for leaf in _json_strings(data):
                out.add(leaf)
                out.add(json.dumps(leaf)[1:-1])  # as it appears inside printed JSON
                out |= _pieces(leaf) if "\n" in leaf else set()
    if "\n" in value:
        out |= {line.strip() for line in value.splitlines()}
    return out


def _json_strings(data: object) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for item in data.values():
            yield from _json_strings(item)
    elif isinstance(data, list):
        for item in data:
            yield from _json_strings(item)


def redact_config(data: Mapping[str, Any], *, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of a config mapping with secrets redacted, by the rules of arguments and variables.

    A key named like a credential (``api_key``, ``db.password``, ``hf_token``) has its value
    redacted (a string, or an integer of 6 digits or more: ``max_tokens: 512`` is no secret);
    any string is cleaned of known key formats and of the literal ``secrets`` (the values of
    credential variables, which ``${oc.env:...}`` may have pulled in). Every writer of a config
    (config.yaml, hparams.csv, run.json, config/script.json) uses this one function.
    """
    known = sorted({s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)
    return _redact_mapping(data, known)


def _redact_mapping(data: Mapping[str, Any], known: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key)
        clean_key = _redact_string(name, known) if isinstance(key, str) else key
        if is_secret_name(name):
            out[clean_key] = _redact_secret_value(value, known)
        else:
            out[clean_key] = _redact_config_value(value, known)
    return out


def _redact_config_value(value: Any, known: list[str]) -> Any:
    if isinstance(value, str):
        return _redact_string(value, known)
    if isinstance(value, Mapping):
        return _redact_mapping(value, known)
    if isinstance(value, (list, tuple)):
        return [_redact_config_value(v, known) for v in value]
    return value


def _redact_secret_value(value: Any, known: list[str]) -> Any:
    """The value of a credential-named key: every string and long integer in it goes."""
    if isinstance(value, str):
        return REDACTED if value else value
    if isinstance(value, int) and not isinstance(value, bool):
        return REDACTED if len(str(abs(value))) >= _MIN_SECRET_LENGTH else value
    if isinstance(value, Mapping):
        return {k: _redact_secret_value(v, known) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_secret_value(v, known) for v in value]
    return value


def _redact_string(text: str, known: list[str]) -> str:
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return redact_text(text)


_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# a key body line (base64, no spaces), an RFC 1421 header, or a blank line
_PEM_LINE = re.compile(r"\s*(?:[A-Za-z0-9+/=]+|(?:Proc-Type|DEK-Info|Comment): .*)?\s*")
_PEM_MAX_LINES = 200  # an 8192-bit RSA key is about 70 lines; past this the block is over


class LineRedactor:
    """Redacts a stream of text lines, secrets that span lines included.

    Each line loses the literal ``secrets`` (longest first) and the known key formats; a PEM
    private key printed over several lines is redacted from its BEGIN line to its END line
    (its body lines are dropped), whatever reads the lines arrived in. The only state is
    whether a key block is open, so memory stays bounded.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted(
            {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )
        self._in_key = 0  # lines since an unterminated BEGIN line; 0 when none is open

    @property
    def in_key(self) -> bool:
        """Whether a key block is open: the next lines are read as its body."""
        return bool(self._in_key)

    def triggers(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]] | None:
        """The words (UTF-8; exact, and lower-case ones to find in lower-cased text) one of
        which every line that :meth:`line` changes holds while no key block is open: a line with
        none of them comes out as it went in. None when some rule has no such word."""
        exact: set[str] = {"://", *(s for s in self.secrets if "\n" not in s)}
        folded: set[str] = set()
        for pattern in SECRET_PATTERNS:
            needles = _NEEDLES.get(pattern.rule)
            if needles is None:
                return None
            words, ignore_case = needles
            (folded if ignore_case else exact).update(
                w.lower() if ignore_case else w for w in words
            )
        return tuple(w.encode() for w in sorted(exact)), tuple(w.encode() for w in sorted(folded))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where in ``text`` (a line or a piece of one) are the secrets :meth:`line` removes."""
        found: list[tuple[int, int]] = []
        for secret in self.secrets:
            at = text.find(secret)
            while at >= 0:
                found.append((at, at + len(secret)))
                at = text.find(secret, at + 1)
        for regex in _candidates(text, text.lower()):
            found.extend(m.span() for m in regex.finditer(text))
        if "://" in text:
            found.extend(m.span() for m in _URL.finditer(text))
        return found

    def line(self, text: str) -> str | None:
        """The redacted line, or None when the whole line is part of a key block."""
        if self._in_key:
            end = _PEM_END.search(text)
            if end is not None:
                self._in_key = 0
                rest = text[end.end() :]
                return self._clean(rest) if rest.strip() else None
            if _PEM_LINE.fullmatch(text) and self._in_key < _PEM_MAX_LINES:
                self._in_key += 1
                return None
            self._in_key = 0  # not a key line: the block was cut short
        begin = _PEM_BEGIN.search(text) if "PRIVATE KEY" in text else None
        if begin is not None and _PEM_END.search(text, begin.end()) is None:
            self._in_key = 1
            return self._clean(text[: begin.start()]) + REDACTED
        return self._clean(text)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return redact_text(text)
