"""Where a remote store is and how to talk to it: a name from ``replicator.yaml``, a URL or a path,
opened through fsspec, with every failure turned into one :class:`~replicator.errors.RemoteError`
line that names the remote without its credentials.

The remote's layout (``format`` 1)::

    REMOTE/
      runs/RUN_ID/...            the run directory's files (checkpoint files are objects instead)
      done/RUN_ID.json           the run's marker, written last: a run without one is incomplete
      objects/AB/ABCDEF...       declared outputs and checkpoints by their BLAKE3 digest
      snapshots/DIGEST.bundle    git bundles of the runs' snapshot refs, one per push and repository

Credentials come from fsspec's usual places (environment variables, ``~/.aws``, a gcloud login,
``~/.ssh/config``) or from ``storage_options`` in ``replicator.yaml``; they are handed to fsspec
and never written or printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.deps import require
from ..errors import MissingDependencyError, RemoteError, ReplicatorError
from ..redact.core import REDACTED, is_secret_name, redact_text, redact_url
from ..store import Store

__all__ = ["FORMAT", "Remote", "open_remote"]

FORMAT = 1
"""The version of the remote layout, written into every marker."""

# Object stores write an object whole or not at all; elsewhere (a path, SSH) a file being written
# is visible under its name, so files that must appear whole are written aside and renamed.
_ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"})
# protocols whose fsspec backend is an extra of replicator's (others name their package themselves)
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs"}


@dataclass
class Remote:
    """An opened remote store: ``fs`` is its fsspec filesystem, ``root`` its path there."""

    shown: str
    """The remote as messages show it: its name or URL, credentials removed."""
    fs: Any
    root: str
    hidden: tuple[str, ...] = ()
    """Credentials given in the URL or the storage options: scrubbed from every message."""

    @property
    def atomic_put(self) -> bool:
        protocol = self.fs.protocol
        protocols = {protocol} if isinstance(protocol, str) else set(protocol)
        return bool(protocols & _ATOMIC_PUT)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def relative(self, path: str) -> str:
        """``path`` (as a listing gives it) relative to the root."""
        root = self.fs._strip_protocol(self.root).rstrip("/")
        path = self.fs._strip_protocol(path)
        return path[len(root) + 1 :] if path.startswith(root + "/") else path

    @contextlib.contextmanager
    def talking(self, doing: str) -> Iterator[None]:
        """Turn what fsspec and its backends raise into a RemoteError naming the remote."""
        try:
            yield
        except (ReplicatorError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise RemoteError(self.describe(exc, doing)) from exc

    def scrub(self, text: str) -> str:
        """``text`` without credentials: known key formats, URL passwords, this remote's own."""
        text = redact_text(" ".join(text.split()))
        for secret in sorted(self.hidden, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def describe(self, exc: BaseException, doing: str) -> str:
        text = self.scrub(str(exc)) or type(exc).__name__
        text = text if len(text) <= 300 else text[:297] + "..."
        hint = "check the URL, that the bucket or folder exists, the network and the credentials"
        if isinstance(exc, FileNotFoundError):
            hint = "check that the bucket or folder exists (create it first)"
        elif isinstance(exc, PermissionError):
            hint = "check the credentials (environment variables, ~/.aws, storage_options)"
        return f"Cannot {doing} remote {self.shown}: {text} ({type(exc).__name__}); {hint}."

    # ------------------------------------------------------------------ reading
    def find(self, *parts: str) -> dict[str, int]:
        """``{relative path: size}`` of every file under ``parts``, in one listing."""
        base = self.path(*parts)
        with self.talking("list"):
            try:
                found = self.fs.find(base, detail=True)
            except FileNotFoundError:
                self._check_bucket()
                return {}
        return {
            self.relative(path): int(info.get("size") or 0)
            for path, info in found.items()
            if info.get("type", "file") == "file"
        }

    def _check_bucket(self) -> None:
        """An object store's listing of a missing prefix and of a missing bucket look alike."""
        if not self.atomic_put:
            return
        bucket = self.fs._strip_protocol(self.root).split("/", 1)[0]
        if bucket and not self.fs.exists(bucket):
            raise RemoteError(
                f"Remote {self.shown}: the bucket '{bucket}' does not exist (or these "
                "credentials cannot see it); create it first."
            )

    def cat(self, paths: list[str]) -> dict[str, bytes | None]:
        """The contents of ``paths`` (relative), fetched together; None for a missing one."""
        if not paths:
            return {}
        full = [self.path(p) for p in paths]
        with self.talking("read"):
            got = self.fs.cat(full, on_error="return")
        result: dict[str, bytes | None] = {}
        for rel, path in zip(paths, full):
            value = got.get(path, got.get(self.fs._strip_protocol(path)))
            if isinstance(value, FileNotFoundError) or value is None:
                result[rel] = None
            elif isinstance(value, BaseException):
                raise RemoteError(self.describe(value, f"read {rel} from"))
            else:
                result[rel] = bytes(value)
        return result

    def get(self, pairs: list[tuple[str, Path]]) -> None:
        """Download ``(relative remote path, local path)`` pairs together."""
        if not pairs:
            return
        for _, local in pairs:
            local.parent.mkdir(parents=True, exist_ok=True)
        with self.talking("download from"):
            self.fs.get([self.path(r) for r, _ in pairs], [os.fspath(p) for _, p in pairs])

    # ------------------------------------------------------------------ writing
    def put(self, pairs: list[tuple[Path, str]], *, whole: bool = False) -> None:
        """Upload ``(local path, relative remote path)`` pairs together. With ``whole`` each
        file appears under its name only once complete (written aside and renamed where the
        filesystem shows partial writes)."""
        if not pairs:
            return
        with self.talking("upload to"):
            if whole and not self.atomic_put:
                aside = [(local, self.path(_aside(rel)), self.path(rel)) for local, rel in pairs]
                self.fs.put([os.fspath(p) for p, _, _ in aside], [a for _, a, _ in aside])
                for _, temp, final in aside:
                    self.fs.mv(temp, final)
            else:
                self.fs.put([os.fspath(p) for p, _ in pairs], [self.path(r) for _, r in pairs])

    def write_json(self, items: Mapping[str, Any]) -> None:
        """Write ``{relative path: JSON value}``, each file appearing whole."""
        if not items:
            return
        data = {
            rel: json.dumps(value, indent=1, default=str).encode() for rel, value in items.items()
        }
        with self.talking("write to"):
            if self.atomic_put:
                self.fs.pipe({self.path(rel): body for rel, body in data.items()})
                return
            for rel, body in data.items():
                temp = self.path(_aside(rel))
                self.fs.pipe_file(temp, body)
                self.fs.mv(temp, self.path(rel))


def _looks_like_path(text: str) -> bool:
    """A path rather than a remote's name: it has a separator, starts with . or ~, or exists."""
    return "/" in text or os.sep in text or text.startswith((".", "~")) or os.path.exists(text)


def _aside(rel: str) -> str:
    folder, _, name = rel.rpartition("/")
    temp = f".{name}.{secrets.token_hex(4)}.tmp"
    return f"{folder}/{temp}" if folder else temp


def open_remote(spec: str, *, store: Store | None = None) -> Remote:
    """Open the remote ``spec``: a name under ``remotes:`` in replicator.yaml, a URL
    (``s3://bucket/prefix``, ``gs://...``, ``ssh://host/path``, ``file:///path``) or a path."""
    spec = spec.strip()
    if not spec:
        raise RemoteError("No remote given: name one from replicator.yaml's 'remotes:' or a URL.")
    configured = ((store.settings.remotes if store is not None else None) or {}).get(spec)
    url = str(configured["url"]) if configured else spec
    options: dict[str, Any] = dict(configured["storage_options"]) if configured else {}
    shown = spec if configured else redact_url(spec)
    if not configured and "://" not in url and not _looks_like_path(url):
        named = sorted((store.settings.remotes or {}) if store is not None else {})
        raise RemoteError(
            f"No remote named '{shown}' under 'remotes:' in replicator.yaml"
            + (f" (it names: {', '.join(named)})" if named else "")
            + f". Give a URL such as s3://bucket/prefix, or a path such as ./{shown}."
        )
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    if protocol == "file":
        local = url.split("://", 1)[1] if "://" in url else url
        url = os.fspath(Path(local).expanduser().absolute())
        options.setdefault("auto_mkdir", True)
    fsspec = require("fsspec", purpose="remote stores (replicator push/pull)")
    if protocol in _PACKAGES:
        require(_PACKAGES[protocol], purpose=f"{protocol}:// remotes")
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except (MissingDependencyError, KeyboardInterrupt):
        raise
    except ImportError as exc:
        raise RemoteError(
            f"Remote {shown}: {Remote(shown, None, url, _credentials(url, options)).scrub(str(exc))}. Install fsspec's backend for "
            f"{protocol}:// (gcsfs for gs://, paramiko for ssh://, adlfs for az://)."
        ) from exc
    except ValueError as exc:
        known = ", ".join(sorted({"s3", "gs", "ssh", "file", "az", "http"}))
        raise RemoteError(
            f"Remote {shown}: {redact_text(str(exc))}. Use a URL such as s3://bucket/prefix "
            f"(protocols: {known}...) or a path."
        ) from exc
    except Exception as exc:  # a backend that connects at once (SSH) and fails
        remote = Remote(shown, None, url, _credentials(url, options))
        raise RemoteError(remote.describe(exc, "open")) from exc
    return Remote(shown, fs, str(root), _credentials(url, options))


def _credentials(url: str, options: Mapping[str, Any]) -> tuple[str, ...]:
    """The user:password part of ``url`` and secret-named storage options, to keep out of
    messages (backends quote them in their errors)."""
    found: list[str] = []
    netloc = url.split("://", 1)[1].split("/", 1)[0] if "://" in url else ""
    if "@" in netloc:
        userinfo = netloc.rsplit("@", 1)[0]
        found += [userinfo, *(part for part in userinfo.split(":")[1:] if part)]
    for name, value in options.items():
        if isinstance(value, str) and len(value) >= 4 and (is_secret_name(name) or name == "key"):
            found.append(value)
    return tuple(found)
