"""The JSON endpoints of ``replicator ui`` (all GET; see docs/ui.md for each one's answer).

Each endpoint reads through :mod:`replicator.ui.data` and friends and answers JSON; an error is
``{"error": "what went wrong, and what to do"}`` with a 4xx status, never a traceback. Run ids
from requests are resolved inside the store only (:func:`replicator.ui.security.run_dir_of`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ReplicatorError, RunNotFoundError, UsageError
from ..store import Store
from .security import UnsafePathError, run_dir_of

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from .table import RunsCache

__all__ = ["ApiError", "error_response", "json_response", "resolve_run"]

MAX_POINTS = 100_000
MAX_TAIL = 10_000
MAX_COMPARE = 50
GZIP_FROM = 64 * 1024
"""``/api/runs`` answers of this many characters or more are sent gzipped to clients that take
it (compressed once per answer: 2.4 MB of 10,000 runs -> about 0.2 MB)."""


class ApiError(Exception):
    """An answer with a 4xx status and a message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(data: Any, status: int = 200) -> Response:
    import json

    from starlette.responses import Response

    body = json.dumps(data, default=str, allow_nan=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def handle(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """``fn`` with its errors turned into JSON answers: ApiError and UsageError 400/404,
    anything unexpected a 500 naming the error (never a traceback)."""

    def wrapped(request: Request) -> Response:
        try:
            return fn(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message)
        except UnsafePathError as exc:
            return error_response(400, f"{exc} Run ids look like 20261126-141503-7f3a.")
        except RunNotFoundError as exc:
            return error_response(404, str(exc))
        except UsageError as exc:
            return error_response(400, str(exc))
        except ReplicatorError as exc:
            return error_response(422, str(exc))
        except Exception as exc:
            return error_response(
                500, f"internal error: {type(exc).__name__}: {exc}. This is a bug in replicator."
            )

    wrapped.__name__ = fn.__name__
    return wrapped


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def runs_of(request: Request) -> RunsCache:
    cache: RunsCache = request.app.state.runs
    return cache


def resolve_run(runs: RunsCache, ref: str) -> Path:
    """The run directory of ``ref`` inside the store: a run id, ``last`` or ``last~N``, a
    unique prefix or suffix of an id, or a run name (as the command line takes them; read from
    the server's listing, so that nothing is written to the store's index)."""
    path = run_dir_of(runs.store.runs_dir, ref)
    if path.is_dir():
        return path
    entries = runs.entries()
    names = [e.name for e in entries]
    latest = re.fullmatch(r"(?:last|latest)(?:~(\d{0,6}))?", ref)
    if latest:
        back = int(latest.group(1) or 1) if "~" in ref else 0
        if back >= len(names):
            raise ApiError(404, f"'{ref}': the store {runs.store.root} has {len(names)} run(s).")
        return runs.store.runs_dir / names[-1 - back]
    matches = [n for n in names if n.startswith(ref) or n.endswith(ref)]
    if not matches:
        matches = [e.name for e in entries if e.record is not None and e.record.name == ref]
    if len(matches) == 1:
        return runs.store.runs_dir / matches[0]
    if not matches:
        raise ApiError(
            404, f"No run '{ref}' in {runs.store.root}. Use `replicator ls` to list runs."
        )
    listed = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
    raise ApiError(404, f"'{ref}' matches {len(matches)} runs ({listed}); give more of the id.")


def _run(request: Request) -> Path:
    return resolve_run(runs_of(request), request.path_params["run_id"])


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"'{name}' must be a whole number, got '{raw[:40]}'.") from None
    return max(low, min(high, value))


def _ids(request: Request, low: int = 1) -> list[str]:
    raw = request.query_params.get("ids", "")
    ids = [i.strip() for i in raw.split(",") if i.strip()]
    if len(ids) < low:
        raise ApiError(400, f"Give at least {low} run id(s): ?ids=ID1,ID2.")
    if len(ids) > MAX_COMPARE:
        raise ApiError(400, f"At most {MAX_COMPARE} runs at once; got {len(ids)}.")
    return ids


# ---------------------------------------------------------------------------- endpoints


@handle
def runs(request: Request) -> Response:
    from starlette.responses import Response

    from .table import runs_answer

    where = request.query_params.get("where") or None
    experiment = request.query_params.get("experiment") or None
    answer = runs_answer(runs_of(request), where=where, experiment=experiment)
    headers = {"vary": "Accept-Encoding"}
    if len(answer.text) >= GZIP_FROM and "gzip" in request.headers.get("accept-encoding", ""):
        headers["content-encoding"] = "gzip"
        return Response(answer.gzip(), media_type="application/json", headers=headers)
    return Response(answer.text, media_type="application/json", headers=headers)


@handle
def runs_csv(request: Request) -> Response:
    from starlette.responses import Response

    from .table import runs_csv as to_csv

    where = request.query_params.get("where") or None
    experiment = request.query_params.get("experiment") or None
    return Response(
        to_csv(runs_of(request), where=where, experiment=experiment),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="runs.csv"'},
    )


@handle
def run(request: Request) -> Response:
    from .data import run_detail

    return json_response(run_detail(store_of(request), _run(request), request.app.state.metrics))


@handle
def verify(request: Request) -> Response:
    from .checkpoints import verify_checkpoints

    return json_response(verify_checkpoints(_run(request)))


def _keys(request: Request) -> list[str] | None:
    raw = request.query_params.get("keys")
    return [k for k in raw.split(",") if k] if raw else None


@handle
def metrics(request: Request) -> Response:
    from .lttb import downsample

    run_dir = _run(request)
    points = _int(request, "points", 2000, 10, MAX_POINTS)
    rank = _int(request, "rank", 0, 0, 1_000_000)
    arrays, offset = request.app.state.metrics.arrays(run_dir, rank=rank)
    wanted = _keys(request)
    out: dict[str, Any] = {}
    for key in wanted if wanted is not None else list(arrays):
        if key not in arrays:
            out[key] = {"step": [], "value": [], "total": 0, "downsampled": False}
            continue
        x, y = arrays[key]
        xs, ys, dropped = downsample(x, y, points)
        out[key] = {
            "step": xs.astype("int64").tolist(),
            "value": ys.tolist(),
            "total": len(x),
            "downsampled": dropped,
        }
    return json_response({"series": out, "offset": offset, "rank": rank})


@handle
def metrics_csv(request: Request) -> Response:
    from starlette.responses import StreamingResponse

    from ..store.metrics import metrics_path, read_metrics

    run_dir = _run(request)
    rank = _int(request, "rank", 0, 0, 1_000_000)
    wanted = set(_keys(request) or ())
    path = run_dir / "metrics.jsonl"
    # a symlink may lead out of the store: not read
    linked = metrics_path(run_dir, rank).is_symlink()
    entries = [] if linked else read_metrics(path, rank=rank)

    def lines() -> Any:
        yield "step,key,value,time\n"
        batch = []
        for entry in entries:
            key = str(entry.get("key"))
            if wanted and key not in wanted:
                continue
            batch.append(
                f"{entry.get('step', '')},{_csv_text(key)},{_csv_number(entry.get('value'))},"
                f"{_csv_number(entry.get('time'))}\n"
            )
            if len(batch) >= 10_000:
                yield "".join(batch)
                batch = []
        yield "".join(batch)

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{run_dir.name}-metrics.csv"'},
    )


def _csv_text(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return _csv_text(str(value))


@handle
def output(request: Request) -> Response:
    from .data import OUTPUT_STREAMS, output_tail

    stream = request.query_params.get("stream", "stdout")
    if stream not in OUTPUT_STREAMS:
        raise ApiError(400, f"stream must be stdout or stderr, got '{stream[:40]}'.")
    tail = _int(request, "tail", 200, 0, MAX_TAIL)
    return json_response(output_tail(_run(request), stream, tail))


@handle
def compare(request: Request) -> Response:
    from .compare import compare_runs

    store = store_of(request)
    dirs = [resolve_run(runs_of(request), ref) for ref in _ids(request, 2)]
    return json_response(compare_runs(store, dirs, request.app.state.metrics))


@handle
def compare_curves(request: Request) -> Response:
    from .compare import compare_curves as curves

    store = store_of(request)
    key = request.query_params.get("key")
    if not key:
        raise ApiError(400, "Give the metric to overlay: ?key=loss.")
    dirs = [resolve_run(runs_of(request), ref) for ref in _ids(request, 1)]
    points = _int(request, "points", 1000, 10, MAX_POINTS)
    state = request.app.state
    return json_response(curves(store, dirs, key, points, state.metrics, state.curve_bands))


@handle
def experiment_params(request: Request) -> Response:
    from .table import experiment_params as params

    return json_response(params(runs_of(request), request.path_params["name"]))


@handle
def export_report(request: Request) -> Response:
    from starlette.responses import Response

    export: Callable[[Store, list[str], str | None], tuple[str, str]] | None
    export = request.app.state.export_report
    if export is None:
        raise ApiError(404, "The report export is not available in this server.")
    store = store_of(request)
    ids = [resolve_run(runs_of(request), ref).name for ref in _ids(request, 1)]
    name, html = export(store, ids, request.query_params.get("metric") or None)
    return Response(
        html,
        media_type="text/html; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@handle
def not_found(request: Request) -> Response:
    raise ApiError(404, f"No endpoint {request.url.path}; see docs/ui.md for the API.")
