"""The ``replicator ui`` application: a Starlette app over one store, read-only.

:func:`create_app` wires the page shells (static HTML files under ``ui/static/`` that fetch the
JSON API), the API (:mod:`replicator.ui.api`) and the guard in front of everything
(:mod:`replicator.ui.security`). Starlette is imported here only, when the app is made, through
:func:`replicator._util.deps.require`: a missing package names ``replicator[ui]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._util.deps import require
from ..store import Store
from .metrics import MetricsCache
from .security import Guard, UnsafePathError, static_file
from .table import RunsCache

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
"""The page shells, scripts, styles and the vendored chart library."""

ExportReport = Callable[[Store, list[str], str | None], tuple[str, str]]
"""(store, run ids, metric or None) -> (file name, the self-contained HTML of
``replicator report``)."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
}


def create_app(
    store_path: str | os.PathLike[str] | Store,
    token: str | None = None,
    *,
    check_host: bool = True,
    export_report: ExportReport | None = None,
    curve_bands: Callable[..., Any] | None = None,
    preload: bool = False,
) -> Any:
    """The ASGI app serving the store at ``store_path`` (a :class:`Store` or its directory).

    ``token``: when given, every request must carry it (``?token=``, the cookie the first page
    load sets, or ``Authorization: Bearer``). ``check_host``: refuse requests whose Host header
    is not this machine (only without a token). ``export_report`` and ``curve_bands`` come from
    the layer above (the report's HTML and its interval bands), so that the UI shows exactly
    what ``replicator report`` computes. ``preload``: read the store's runs in a background
    thread now, so that the first page finds them read.
    """
    require("starlette", purpose="replicator ui")
    from starlette.applications import Starlette
    from starlette.routing import Route

    store = store_path if isinstance(store_path, Store) else Store(store_path)
    routes = [
        *_api_routes(),  # first: /api/... is never a page
        Route("/", _page("runs.html")),
        Route("/runs/{run_id}", _page("run.html")),
        Route("/compare", _page("compare.html")),
        Route("/experiments/{name}", _page("experiment.html")),
        Route("/static/{path:path}", _static),
        Route("/favicon.ico", _favicon),
    ]
    app = Starlette(routes=routes)
    app.router.redirect_slashes = False  # one URL per page; a redirect is no answer to a bad path
    app.state.store = store
    app.state.metrics = MetricsCache()
    app.state.runs = RunsCache(store)
    if preload:
        import threading

        threading.Thread(target=_preload, args=(app.state.runs,), daemon=True).start()
    app.state.export_report = export_report
    app.state.curve_bands = curve_bands
    app.add_exception_handler(404, _not_found)
    app.add_exception_handler(405, _not_allowed)
    return Guard(app, token=token, check_host=check_host)


def _api_routes() -> list[Any]:
    """The routes of the JSON API (:mod:`replicator.ui.api`) and the event stream."""
    from starlette.routing import Route

    from . import api
    from .live import live

    return [
        Route("/api/runs", api.runs),
        Route("/api/runs/{run_id}", api.run),
        Route("/api/runs/{run_id}/checkpoints/verify", api.verify),
        Route("/api/runs/{run_id}/metrics", api.metrics),
        Route("/api/runs/{run_id}/metrics.csv", api.metrics_csv),
        Route("/api/runs/{run_id}/output", api.output),
        Route("/api/runs/{run_id}/live", live),
        Route("/api/compare", api.compare),
        Route("/api/compare/curves", api.compare_curves),
        Route("/api/experiments/{name}/params", api.experiment_params),
        Route("/api/export/report", api.export_report),
        Route("/api/export/runs.csv", api.runs_csv),
        Route("/api/{rest:path}", api.not_found),
    ]


def _preload(cache: RunsCache) -> None:
    """Read the store's runs once; a failure is left for the first request to report."""
    try:
        cache.entries()
    except Exception:  # the request that needs the runs says what failed
        pass


def _file_response(path: Path) -> Any:
    from starlette.responses import FileResponse

    from .api import error_response

    if not path.is_file():
        return error_response(404, f"No file '{path.name}' in the app.")
    media = _TYPES.get(path.suffix.lower(), "application/octet-stream")
    return FileResponse(path, media_type=media, headers={"cache-control": "no-cache"})


def _page(name: str) -> Callable[[Any], Any]:
    def page(request: Any) -> Any:
        return _file_response(STATIC_DIR / name)

    page.__name__ = f"page_{name.split('.')[0]}"
    return page


def _static(request: Any) -> Any:
    from .api import error_response

    try:
        path = static_file(STATIC_DIR, request.path_params["path"])
    except UnsafePathError as exc:
        return error_response(400, str(exc))
    return _file_response(path)


def _favicon(request: Any) -> Any:
    from starlette.responses import Response

    return Response(status_code=204)


async def _not_found(request: Any, exc: Exception) -> Any:
    from .api import error_response

    return error_response(404, f"No page {request.url.path}. Start at /.")


async def _not_allowed(request: Any, exc: Exception) -> Any:
    from .api import error_response

    return error_response(405, "Only GET and HEAD are allowed: replicator ui is read-only.")
