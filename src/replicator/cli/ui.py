"""``replicator ui``: serve the local web app over the store (read-only) and print its URL."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import StoreError
from ..store import DamagedRun, RunRecord, Store, read_run

__all__ = ["ui_command"]


@click.command("ui")
@click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False, path_type=Path),
    help="The store directory (default: the store of the working directory).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; any other than loopback requires a token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to bind; 0 picks a free one.",
)
@click.option(
    "--token",
    help="Access token every request must carry (default: none on 127.0.0.1, generated otherwise).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the app in the web browser.")
def ui_command(
    store_path: Path | None, host: str, port: int, token: str | None, open_browser: bool
) -> None:
    """Serve a local web app to browse, watch and compare the runs of the store.

    Read-only: the app never writes to the store. It binds 127.0.0.1 unless --host says
    otherwise; a non-loopback --host needs a token (generated and printed, or --token), which
    every request must carry. The first line printed is the URL to open.

    \b
    Examples:
      replicator ui
      replicator ui --port 0 --open
      replicator ui --host 0.0.0.0 --token "$(openssl rand -hex 16)"
    """
    from .._util.deps import require
    from ..errors import UsageError
    from ..ui.app import create_app
    from ..ui.security import is_loopback, new_token

    require("starlette", purpose="replicator ui")
    uvicorn = require("uvicorn", purpose="replicator ui")
    store = Store.coerce(store_path) if store_path is not None else Store.open()
    if store_path is not None and not store.root.is_dir():
        raise StoreError(
            f"No store at {store.root}: give the .replicator directory of a project "
            "(--store PATH/.replicator)."
        )
    if token is not None and not token.strip():
        raise UsageError("--token is empty; give a token or leave --token out.")
    if token is None and not is_loopback(host):
        token = new_token()
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    app = create_app(
        store, token, export_report=_export_report, curve_bands=_curve_bands, preload=True
    )
    url = _url(host, bound_port, token)
    click.echo(f"replicator ui: {url}")
    sys.stdout.flush()
    if not is_loopback(host):
        click.echo(
            f"Listening on {host}:{bound_port}; other machines need the token (shown above).",
            err=True,
        )
    click.echo(f"Serving {store.root} read-only; press Ctrl+C to stop.", err=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port): bound before the URL is printed, so that the URL
    works the moment it is read."""
    from ..errors import UsageError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host!r} is not an address of this machine ({exc}).") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"Cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
            "(0 picks a free one)."
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int, token: str | None) -> str:
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = "127.0.0.1"
    elif ":" in host:
        shown = f"[{host}]"
    query = f"?token={token}" if token else ""
    return f"http://{shown}:{port}/{query}"


def _export_report(store: Store, ids: list[str], metric: str | None) -> tuple[str, str]:
    """(file name, HTML) of ``replicator report`` over exactly the runs ``ids``; ``metric``
    defaults to the first summary metric every selected run has."""
    from ..errors import UsageError
    from ..report import build_report, render_report

    chosen = set(ids)
    selected = _SelectedStore(store, chosen)
    experiments = sorted({r.experiment for r in selected.records()})
    if len(experiments) != 1:
        raise UsageError(
            "A report covers one experiment; the selected runs belong to "
            f"{len(experiments)} ({', '.join(experiments) or 'none readable'}). Select runs "
            "of one experiment."
        )
    if metric is None:
        metric = _common_metric(selected.records())
    report = build_report(experiments[0], store=selected, metric=metric)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiments[0])
    return f"{safe}-report.html", render_report(report, "html")


def _common_metric(records: list[RunRecord]) -> str | None:
    done = [r for r in records if r.status == "completed"] or records
    if not done:
        return None
    first = [
        k
        for k, v in done[0].summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    common = [k for k in first if all(k in r.summary for r in done[1:])]
    return common[0] if common else None


def _curve_bands(values: Any, **options: Any) -> Any:
    """The learning-curve bands of ``replicator report``, imported on first use: starting the
    server does not load the report's modules."""
    from ..report.plots import curve_bands

    return curve_bands(values, **options)


class _SelectedStore(Store):
    """The store, listing only the chosen runs: the report of a selection. Their directories
    are read directly, so that exporting a report writes nothing (not even the index)."""

    def __init__(self, store: Store, ids: set[str]) -> None:
        super().__init__(store.root, project_root=store.project_root)
        self._ids = ids

    def records(self, *, use_index: bool = True) -> list[RunRecord]:
        self.problems, self.damaged = [], []
        found = []
        for run_id in sorted(self._ids):
            run_dir = self.runs_dir / run_id
            try:
                found.append(read_run(run_dir, stale_after=self.heartbeat_stale_s))
            except StoreError as exc:
                self.problems.append(str(exc))
                self.damaged.append(DamagedRun(run_dir, str(exc)))
        return found
