"""The Visdom sink: a run's curves, config and summary in a running Visdom server.

Each metric key is one line plot window (window id = the key, ``rank1/KEY`` for rank 1), in which
the run is one trace named by its run id, appended to as points arrive; a step-less point is
placed at the count of the key's points sent so far. Runs mirrored to the same ``env`` share the
windows, one trace each, so their curves overlay. The config (with the run's tags) is a text
window ``config:RUN_ID``, the summary a text window ``summary:RUN_ID``; the run's status is added
to the config window at the end, and the env is saved on the server (``env_path``).

Options: ``server`` (default ``http://localhost``), ``port`` (8097), ``env`` (default
``EXPERIMENT_RUN_ID``, so Visdom lists it under the experiment), ``timeout`` (seconds per request,
default 5). A login, when the server has one, comes from ``VISDOM_USERNAME`` and
``VISDOM_PASSWORD``, the variables the Visdom server reads, never from the options.

The sink connects on its first send, not at open: a server that is down or refuses makes
``send_*`` raise (within ``timeout``), and the worker retries the batch later; points of a batch
already appended before a failure are not appended twice when that batch is retried. When the
run is resumed from a step (``replicator run --resume``), the run's points after that step are
dropped from its traces, and the resumed run's points follow. A later session (after a crash, or
``replicator mirror``) appends to the same windows.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar
from urllib.parse import urlparse

from .._util.deps import require
from ..errors import UsageError
from ._options import check_keys, float_option, int_option, str_option
from .base import Point, RunInfo, Sink

__all__ = ["VisdomSink"]

_OPTIONS = ("server", "port", "env", "timeout")
_CREDENTIALS = "Set VISDOM_USERNAME and VISDOM_PASSWORD in the environment instead."
_ENV_UNSAFE = re.compile(r"[^\w.-]+")


@dataclass(frozen=True)
class _Settings:
    server: str
    port: int
    env: str | None
    timeout: float


class VisdomSink(Sink):
    """Mirror a run into a Visdom server: a line plot window per metric, config and summary text."""

    name: ClassVar[str] = "visdom"
    module: ClassVar[str] = "visdom"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._info: RunInfo | None = None
        self._settings_: _Settings | None = None
        self._env = ""
        self._client: Any = None
        self._counts: dict[str, int] = {}  # points sent per window, the x of step-less points
        self._ahead: dict[str, int] = {}  # points per window sent of a batch not yet done

    def check(self) -> None:
        super().check()
        self._settings()

    def _settings(self) -> _Settings:
        check_keys(self.name, self.options, _OPTIONS, credentials=_CREDENTIALS)
        server = str_option(self.name, self.options, "server", "http://localhost")
        assert server is not None
        parsed = urlparse(server if "//" in server else f"http://{server}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UsageError(
                f"Mirror 'visdom': option 'server' must be a URL such as http://localhost, "
                f"got {server!r}."
            )
        if parsed.port is not None or parsed.path not in ("", "/"):
            raise UsageError(
                f"Mirror 'visdom': option 'server' is {server!r}; give only the scheme and host "
                f"(http://{parsed.hostname}) and the port in the option 'port'."
            )
        env = str_option(self.name, self.options, "env", None)
        if env is not None and _ENV_UNSAFE.search(env):
            raise UsageError(
                f"Mirror 'visdom': option 'env' must be letters, digits, '_', '-' or '.' (Visdom "
                f"saves it as a file name), got {env!r}."
            )
        return _Settings(
            server=f"{parsed.scheme}://{parsed.hostname}",
            port=int_option(self.name, self.options, "port", 8097, low=1, high=65535),
            env=env,
            timeout=float_option(self.name, self.options, "timeout", 5.0, low=0.1, high=600.0),
        )

    def open(self, info: RunInfo) -> None:
        self._settings_ = self._settings()
        require(self.module, purpose="Mirroring runs to visdom")
        self._info = info
        self._env = self._settings_.env or _ENV_UNSAFE.sub("-", f"{info.experiment}_{info.run_id}")

    def send_metrics(self, points: Sequence[Point]) -> None:
        client = self._connected()
        counts = dict(self._counts)
        windows: dict[str, tuple[list[float], list[float]]] = {}
        for point in points:
            window = point.key if point.rank == 0 else f"rank{point.rank}/{point.key}"
            xs, ys = windows.setdefault(window, ([], []))
            xs.append(float(point.step) if point.step is not None else float(counts.get(window, 0)))
            ys.append(point.value if math.isfinite(point.value) else math.nan)
            counts[window] = counts.get(window, 0) + 1
        for window, (xs, ys) in windows.items():
            # a batch that failed half-way is sent again from its start (the worker's offset
            # moves only when a whole batch went through): skip what already arrived
            done = self._ahead.get(window, 0)
            if done >= len(xs):
                continue
            self._call(
                client.line,
                X=xs[done:],
                Y=ys[done:],
                win=window,
                env=self._env,
                name=self._trace(),
                update="append",
                opts={"title": window, "xlabel": "step", "ylabel": window, "showlegend": True},
            )
            self._ahead[window] = len(xs)
        self._ahead.clear()
        self._counts = counts

    def send_resume(self, step: int) -> None:
        """Drop this run's values after ``step`` from its traces: the resumed run sends its own."""
        client = self._connected()
        answer = self._call(client.get_window_data, win=None, env=self._env)
        windows = json.loads(answer) if answer else {}
        for win, window in windows.items():
            if not isinstance(window, dict) or window.get("type") != "plot":
                continue
            traces = window.get("content", {}).get("data", [])
            for trace in traces:
                if trace.get("name") != self._trace():
                    continue
                kept = [
                    (x, y)
                    for x, y in zip(trace.get("x", []), trace.get("y", []), strict=False)
                    if x is not None and x <= step
                ]
                if len(kept) == len(trace.get("x", [])):
                    continue
                if kept:
                    self._call(
                        client.line,
                        X=[x for x, _ in kept],
                        Y=[y if y is not None else math.nan for _, y in kept],
                        win=win,
                        env=self._env,
                        name=self._trace(),
                        update="replace",
                    )
                elif len(traces) == 1:
                    self._call(client.close, win=win, env=self._env)
                else:
                    self._call(
                        client.line,
                        X=None,
                        Y=None,
                        win=win,
                        env=self._env,
                        name=self._trace(),
                        update="remove",
                    )

    def send_summary(self, summary: Mapping[str, float]) -> None:
        client = self._connected()
        body = _pre(json.dumps(dict(summary), indent=2, sort_keys=True, default=str))
        self._call(
            client.text,
            f"<b>summary of {html.escape(self._trace())}</b>{body}",
            win=f"summary:{self._trace()}",
            env=self._env,
            opts={"title": f"summary {self._title()}"},
        )

    def close(self, status: str) -> None:
        client = self._connected()
        self._call(
            client.text,
            f"status: {html.escape(status)}",
            win=f"config:{self._trace()}",
            env=self._env,
            append=True,
        )
        self._call(client.save, [self._env])
        self._client = None

    def where(self) -> str:
        if self._settings_ is None:
            return ""
        return f"{self._settings_.server}:{self._settings_.port}/env/{self._env}"

    def _trace(self) -> str:
        assert self._info is not None
        return self._info.run_id

    def _title(self) -> str:
        assert self._info is not None
        return self._info.name or self._info.run_id

    def _connected(self) -> Any:
        """The client, connecting (and sending the config window) on first use."""
        if self._client is not None:
            return self._client
        if self._info is None or self._settings_ is None:
            raise RuntimeError("The visdom sink is not open (open() first).")
        visdom = require(self.module, purpose="Mirroring runs to visdom")
        _quiet_client_log()
        settings = self._settings_
        client = self._call(
            _client_class(visdom),
            server=settings.server,
            port=settings.port,
            env=self._env,
            timeout=settings.timeout,
            username=os.environ.get("VISDOM_USERNAME") or None,
            password=os.environ.get("VISDOM_PASSWORD") or None,
        )
        info = self._info
        facts = {"run_id": info.run_id, "experiment": info.experiment, "name": info.name}
        facts.update(info.tags)
        body = _pre(json.dumps(dict(info.config), indent=2, sort_keys=True, default=str))
        facts_body = _pre(json.dumps(facts, indent=2, default=str))
        self._call(
            client.text,
            f"<b>config</b>{body}<b>run</b>{facts_body}",
            win=f"config:{info.run_id}",
            env=self._env,
            opts={"title": f"config {self._title()}"},
        )
        self._client = client
        return client

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the Visdom client; a server that refuses, does not answer or answers with an
        error raises ConnectionError naming it, so that the worker retries."""
        assert self._settings_ is not None
        try:
            return function(*args, **kwargs)
        except ConnectionError as exc:
            settings = self._settings_
            server = f"Visdom server {settings.server}:{settings.port}"
            cause = exc.__context__ or exc  # the client raises its own from the request's error
            status = getattr(getattr(cause, "response", None), "status_code", None)
            if status is not None:
                raise ConnectionError(
                    f"{server} answered HTTP {status} ({cause}); its log says why."
                ) from exc
            raise ConnectionError(
                f"{server} refused or did not answer within {settings.timeout:g} s "
                f"({type(cause).__name__}: {cause}); is `python -m visdom.server -port "
                f"{settings.port}` running?"
            ) from exc


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def _quiet_client_log() -> None:
    """The Visdom client logs a WARNING for each session it sets up and for running without
    its event socket; neither concerns a mirror. Its errors stay visible."""
    logger = logging.getLogger("visdom")
    if not logger.level:
        logger.setLevel(logging.ERROR)


_CLIENTS: dict[int, type] = {}


def _client_class(visdom: ModuleType) -> type:
    """visdom.Visdom with a timeout on each request and HTTP errors raised: the client's own
    requests wait forever and read an error page as an answer. ``_handle_post`` is the hook
    Visdom documents for this."""
    cached = _CLIENTS.get(id(visdom))
    if cached is not None:
        return cached

    class _Client(visdom.Visdom):  # type: ignore[name-defined]
        def __init__(self, *, timeout: float, **kwargs: Any) -> None:
            self._timeout = timeout
            with warnings.catch_warnings():
                # visdom 0.2 logs through the deprecated Logger.warn
                warnings.filterwarnings(
                    "ignore", r"The 'warn' method is deprecated", DeprecationWarning
                )
                super().__init__(raise_exceptions=True, use_incoming_socket=False, **kwargs)

        def _handle_post(self, url: str, data: Any = None) -> str:
            response = self.session.post(url, data=data or {}, timeout=self._timeout)
            response.raise_for_status()
            return str(response.text)

    _CLIENTS[id(visdom)] = _Client
    return _Client
