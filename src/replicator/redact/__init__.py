"""Secret patterns and redaction, shared by capture (nothing secret reaches disk) and release scans.

One table of known key formats (``SECRET_PATTERNS``) serves both: capture replaces matches by
``<redacted>`` in environment variables, command lines, URLs and captured output; the release
scanner reports them. Names that look like credentials (KEY, TOKEN, SECRET, PASSWORD, ...) redact
a whole value whatever it looks like.
"""

from __future__ import annotations

from .core import (
    REDACTED,
    SECRET_PATTERNS,
    LineRedactor,
    SecretPattern,
    clean_remote_url,
    is_secret_name,
    redact_argv,
    redact_config,
    redact_env,
    redact_text,
    redact_url,
    secret_values,
)
from .scan import SecretHit, find_secrets, shannon_entropy
from .stream import StreamRedactor

__all__ = [
    "REDACTED",
    "SECRET_PATTERNS",
    "LineRedactor",
    "SecretHit",
    "SecretPattern",
    "StreamRedactor",
    "clean_remote_url",
    "find_secrets",
    "is_secret_name",
    "redact_argv",
    "redact_config",
    "redact_env",
    "redact_text",
    "redact_url",
    "secret_values",
    "shannon_entropy",
]
