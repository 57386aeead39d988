"""Mirroring a run: while it is recorded (:func:`start_mirroring`), and afterwards
(:func:`mirror_recorded`, behind ``replicator mirror RUN --to NAME``).

The worker runs where the run's record is owned: in the ``replicator run`` recorder (which also
takes the sinks a joined script asks for with ``start(mirror=...)``), or in the script's own
process when ``start()`` opened the run itself. A resumed run goes on feeding the sinks its
earlier sessions fed, from the offsets in ``mirrors.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .base import Sink
from .plan import MirrorRequest, prepare_sinks, read_request
from .state import read_mirrors
from .worker import CLOSE_TIMEOUT_S, MirrorWorker, Report

__all__ = ["check_mirroring", "mirror_recorded", "start_mirroring"]

Settings = Mapping[str, Mapping[str, Any]] | None


def check_mirroring(
    requested: Mapping[str, Mapping[str, Any]] | None,
    *,
    settings: Settings,
    where: str = "--mirror",
) -> list[Sink]:
    """The sinks a run will feed, checked now (unknown name, missing package, a credential
    among the options), before anything of the run exists."""
    request = None if requested is None else {k: dict(v) for k, v in requested.items()}
    return prepare_sinks(request, settings=settings, where=where)


def start_mirroring(
    run_dir: str | os.PathLike[str],
    requested: Mapping[str, Mapping[str, Any]] | None,
    *,
    settings: Settings,
    on_warning: Report | None = None,
    ready: Callable[[], None] | None = None,
    resumed: bool = False,
    accept_requests: bool = False,
    sinks: Sequence[Sink] | None = None,
) -> MirrorWorker | None:
    """Start feeding a run's sinks; None when it has none (and takes no requests).

    ``accept_requests``: the recorder of ``replicator run`` also feeds the sinks a joined script
    asks for (``config/mirror.json``). ``resumed``: the sinks of earlier sessions go on.
    """
    run_dir = Path(run_dir)
    chosen = list(sinks) if sinks is not None else check_mirroring(requested, settings=settings)
    if resumed:
        names = {sink.name for sink in chosen}
        earlier = {
            name: dict(entry.get("options") or {})
            for name, entry in read_mirrors(run_dir).items()
            if name not in names
        }
        if earlier:
            chosen += _quietly(earlier, settings=settings, on_warning=on_warning)
    requests = None
    if accept_requests:
        seen: set[str] = set()

        def requests() -> dict[str, Sink]:
            request = {k: v for k, v in read_request(run_dir).items() if k not in seen}
            seen.update(request)
            made = _quietly(request, settings=settings, on_warning=on_warning)
            return {sink.name: sink for sink in made}

    if not chosen and requests is None:
        return None
    worker = MirrorWorker(run_dir, chosen, on_warning=on_warning, ready=ready, requests=requests)
    return worker.start()


def _quietly(
    request: MirrorRequest, *, settings: Settings, on_warning: Report | None
) -> list[Sink]:
    """Sinks asked for once the run is under way: one that cannot be made is reported, not
    raised (the run goes on; its record is complete)."""
    made = []
    for name, options in request.items():
        try:
            made += prepare_sinks({name: options}, settings=settings)
        except Exception as exc:
            if on_warning is not None:
                on_warning(f"mirror {name}: not mirrored: {exc}")
    return made


def mirror_recorded(
    run_dir: str | os.PathLike[str],
    names: Sequence[str],
    *,
    status: str,
    settings: Settings,
    on_warning: Report | None = None,
    timeout: float = CLOSE_TIMEOUT_S,
) -> dict[str, dict[str, Any]]:
    """Send a recorded run to the sinks ``names``, each from where it stopped (its offset in
    ``mirrors.json``); returns their state afterwards. A sink that has everything is left as
    it is."""
    run_dir = Path(run_dir)
    if not names:
        raise UsageError("Name the sinks to send the run to, e.g. --to mlflow,tensorboard.")
    recorded = read_mirrors(run_dir)
    configured = settings or {}
    request = {}
    for name in names:  # replicator.yaml now wins over what the run was mirrored with
        earlier = dict((recorded.get(name) or {}).get("options") or {})
        request[name] = {**earlier, **dict(configured.get(name) or {})}
    sinks = prepare_sinks(request, settings=None, where="--to")
    worker = MirrorWorker(run_dir, sinks, on_warning=on_warning).start()
    worker.close(status, timeout=timeout)
    state = read_mirrors(run_dir)
    return {name: state.get(name, {}) for name in names}
