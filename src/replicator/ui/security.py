"""What keeps ``replicator ui`` safe to run: read-only methods, the access token, the headers that
forbid loading anything from elsewhere, and paths from requests resolved inside the store only.

Everything here is one ASGI middleware (:class:`Guard`) in front of the app plus two resolvers
(:func:`run_dir_of`, :func:`static_file`). A request is refused, in this order, when its method
is not GET or HEAD (405), when a token is in force and the request carries none that matches
(401), or, on a loopback bind without a token, when its ``Host`` header names another machine
(403: a web page that points its own domain at 127.0.0.1, "DNS rebinding", cannot read the
store).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

__all__ = [
    "CSP",
    "TOKEN_COOKIE",
    "Guard",
    "UnsafePathError",
    "is_loopback",
    "new_token",
    "run_dir_of",
    "static_file",
]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy of every response: nothing is loaded from another origin and no
inline script runs."""
TOKEN_COOKIE = "replicator_ui_token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
# a run id as the store makes them, or a name; never a path
_RUN_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.~-]{0,199}$")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class UnsafePathError(ValueError):
    """A run id or file name from a request that would leave the store (or the static folder)."""


def new_token() -> str:
    """A fresh access token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_dir_of(runs_dir: Path, ref: str) -> Path:
    """The run directory ``ref`` (a run id) names, inside ``runs_dir``; UnsafePathError for
    anything else (``..``, a path, a symlink leading out of the store)."""
    if not _RUN_REF.match(ref) or ".." in ref:
        raise UnsafePathError(f"'{_clip(ref)}' is not a run id.")
    root = runs_dir.resolve()
    path = (root / ref).resolve()
    if path.parent != root:
        raise UnsafePathError(f"'{_clip(ref)}' leads out of the store.")
    return path


def static_file(folder: Path, name: str) -> Path:
    """The file ``name`` (a relative path) inside ``folder``; UnsafePathError when it is absolute,
    holds ``..`` or resolves (through a symlink) outside ``folder``."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or "\0" in name:
        raise UnsafePathError(f"'{_clip(name)}' is not a file of the app.")
    if any(part in ("..", "") for part in name.split("/")):
        raise UnsafePathError(f"'{_clip(name)}' is not a file of the app.")
    root = folder.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise UnsafePathError(f"'{_clip(name)}' leads out of the app's folder.")
    return path


def _clip(text: str, limit: int = 60) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Guard:
    """ASGI middleware: read-only methods, the token, the Host check and the security headers."""

    def __init__(self, app: ASGIApp, *, token: str | None, check_host: bool = True) -> None:
        self.app = app
        self.token = token
        self.check_host = check_host and token is None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if scope["method"] not in SAFE_METHODS:
            await _refuse(
                send,
                405,
                f"{scope['method']} is not allowed: replicator ui is read-only (GET and HEAD only).",
                [(b"allow", b"GET, HEAD")],
            )
            return
        set_cookie = False
        if self.token is not None:
            given = _given_token(scope, headers)
            if given is None or not hmac.compare_digest(given[0], self.token):
                await _refuse(
                    send,
                    401,
                    "This replicator ui needs its access token: open the URL it printed "
                    "(with ?token=...) or send 'Authorization: Bearer TOKEN'.",
                )
                return
            set_cookie = given[1] == "query"
        elif self.check_host and not _local_host(headers.get("host", "")):
            await _refuse(
                send,
                403,
                f"Host '{_clip(headers.get('host', ''))}' is not this machine; open the URL "
                "replicator ui printed (http://127.0.0.1:PORT/).",
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(message.get("headers", []))
                extra.extend(_security_headers())
                if set_cookie and self.token is not None:
                    cookie = (
                        f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                    ).encode()
                    extra.append((b"set-cookie", cookie))
                message["headers"] = extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _security_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _given_token(scope: Scope, headers: dict[str, str]) -> tuple[str, str] | None:
    """The token a request carries and where: ``query``, ``bearer`` or ``cookie``."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], "query"
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip(), "bearer"
    if "cookie" in headers:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:  # a malformed Cookie header is no token
            return None
        if TOKEN_COOKIE in cookie:
            return cookie[TOKEN_COOKIE].value, "cookie"
    return None


def _local_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host.startswith("[") and "]" in host:
        name = host[: host.index("]") + 1]
    return name.lower() in _LOCAL_HOSTS or is_loopback(name)


async def _refuse(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *_security_headers(),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
