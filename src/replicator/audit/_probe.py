"""The audit's probe: copied as ``sitecustomize.py`` into a folder put first on a re-run's
PYTHONPATH, it changes one factor inside the child's interpreter before the script starts.

It reads ``probe.json`` beside itself and appends what it saw to ``probe.jsonl`` there:
``{"event": "loaded"}`` once per process (so the audit knows the factor reached the script),
and ``{"event": "nondeterministic-op", ...}`` for each op torch's deterministic mode reports.
It imports nothing from replicator: the child's interpreter may not have it installed.

Settings (``probe.json``):

``clock``        ``{"mode": "shift", "offset": S}``: time.time(), datetime.now() ... S seconds
                 later; ``{"mode": "tick", "start": T, "step": D}``: each call returns the last
                 value plus D (a clock that depends on the number of calls, not on speed)
``entropy``      true: os.urandom, unseeded random.Random, secrets, numpy's SeedSequence and
                 uuid4 draw from a fixed stream
``completion``   ``"submission"`` or ``"reversed"``: as_completed and imap_unordered give results
                 in that order instead of completion order
``listing``      ``"reversed"``: os.listdir/os.scandir (and so glob, os.walk, Path.iterdir)
                 list in the reverse of the filesystem's order
``deterministic`` true: torch.use_deterministic_algorithms(True, warn_only=True) when torch is
                 imported (the script cannot turn warn_only off), cuDNN deterministic and not
                 benchmarking; each warning is recorded with the script's file and line
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
_EVENTS = os.path.join(_HERE, "probe.jsonl")


def _record(event: dict[str, Any]) -> None:
    line = json.dumps({**event, "pid": os.getpid()}) + "\n"
    fd = os.open(_EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _settings() -> dict[str, Any]:
    try:
        with open(os.path.join(_HERE, "probe.json"), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- the clock ------------------------------------------------------------------------------
def _patch_clock(settings: dict[str, Any]) -> None:
    import datetime as _dt
    import threading  # noqa: F401 - binds the real monotonic clock for locks and waits (and

    # so do the modules _install imports first: subprocess and queue timeouts stay real)
    import time

    real_time = time.time
    if settings.get("mode") == "tick":
        start = float(settings.get("start", 1.7e9))
        step = float(settings.get("step", 0.001))
        state = {"now": start}

        def now() -> float:
            state["now"] += step
            return state["now"]

        def counter() -> float:  # perf_counter and monotonic tick with the wall clock
            return now() - start

        for name in ("perf_counter", "monotonic"):
            setattr(time, name, counter)
            setattr(time, name + "_ns", lambda: int(counter() * 1e9))
    else:
        offset = float(settings.get("offset", 0.0))

        def now() -> float:
            return real_time() + offset

    time.time = now
    time.time_ns = lambda: int(now() * 1e9)

    class _DateTime(_dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return cls.fromtimestamp(time.time(), tz)

        @classmethod
        def utcnow(cls) -> Any:
            return cls.fromtimestamp(time.time(), _dt.timezone.utc).replace(tzinfo=None)

        @classmethod
        def today(cls) -> Any:
            return cls.fromtimestamp(time.time())

    class _Date(_dt.date):
        @classmethod
        def today(cls) -> Any:
            return cls.fromtimestamp(time.time())

    _dt.datetime = _DateTime  # type: ignore[misc]
    _dt.date = _Date  # type: ignore[misc]


# --- entropy --------------------------------------------------------------------------------
def _patch_entropy() -> None:
    import random

    stream = random.Random(20261129)
    real_seed = random.Random.seed

    def urandom(n: int) -> bytes:
        return stream.randbytes(n)

    def seed(self: random.Random, a: Any = None, version: int = 2) -> None:
        real_seed(self, stream.getrandbits(64) if a is None else a, version)

    os.urandom = urandom
    random._urandom = urandom  # type: ignore[attr-defined]  # SystemRandom, secrets
    random.Random.seed = seed  # type: ignore[method-assign]
    random.seed()  # the module's own generator was seeded from the OS at import


# --- completion order ------------------------------------------------------------------------
def _patch_completion(mode: str) -> None:
    import concurrent.futures as cf
    import concurrent.futures._base as base
    import multiprocessing.pool as mp_pool

    def as_completed(fs: Any, timeout: float | None = None) -> Any:
        futures = list(dict.fromkeys(fs))
        order = futures if mode == "submission" else futures[::-1]
        for future in order:
            cf.wait([future], timeout=timeout)
            yield future

    def imap_unordered(self: Any, func: Any, iterable: Any, chunksize: int = 1) -> Any:
        results = self.imap(func, iterable, chunksize)
        return results if mode == "submission" else iter(list(results)[::-1])

    cf.as_completed = as_completed
    base.as_completed = as_completed
    mp_pool.Pool.imap_unordered = imap_unordered  # type: ignore[method-assign,assignment]


# --- directory listings ----------------------------------------------------------------------
class _Listing:
    """What os.scandir returns (an iterator and a context manager), over a fixed list."""

    def __init__(self, entries: list[Any]) -> None:
        self._it = iter(entries)

    def __iter__(self) -> _Listing:
        return self

    def __next__(self) -> Any:
        return next(self._it)

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


def _patch_listing() -> None:
    real_listdir, real_scandir = os.listdir, os.scandir

    def listdir(path: Any = ".") -> list[Any]:
        return real_listdir(path)[::-1]

    def scandir(path: Any = ".") -> Any:
        with real_scandir(path) as it:
            entries = list(it)
        return _Listing(entries[::-1])

    os.listdir = listdir
    os.scandir = scandir


# --- torch deterministic mode ---------------------------------------------------------------
_MARK = "does not have a deterministic implementation"


def _user_frame(default: tuple[str, int]) -> tuple[str, int]:
    """The innermost frame of the user's own code (not torch, not an installed package)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if (
            "site-packages" not in name
            and "dist-packages" not in name
            and not name.startswith((sys.prefix, sys.base_prefix, _HERE))
            and not name.startswith("<frozen")
        ):
            return name, frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return default


def _on_torch(torch: Any) -> None:
    import warnings

    real_set = torch.use_deterministic_algorithms

    def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
        real_set(True, warn_only=True)  # the audit keeps it on, reporting instead of raising

    real_set(True, warn_only=True)
    torch.use_deterministic_algorithms = use_deterministic_algorithms
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    real_show = warnings.showwarning

    def showwarning(message: Any, category: Any, filename: str, lineno: int, *a: Any) -> None:
        text = str(message)
        if _MARK in text:
            path, line = _user_frame((filename, lineno))
            op = text.split(" does not have", 1)[0].strip()
            _record({"event": "nondeterministic-op", "op": op, "path": path, "line": line})
        real_show(message, category, filename, lineno, *a)

    warnings.showwarning = showwarning  # type: ignore[assignment]
    warnings.filterwarnings("always", message=f".*{_MARK}")


class _TorchHook:
    """A ``sys.meta_path`` finder that runs :func:`_on_torch` right after torch is imported."""

    busy = False

    @classmethod
    def find_spec(cls, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "torch" or cls.busy:
            return None
        import importlib.util

        cls.busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            cls.busy = False
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        real_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            real_exec(module)
            sys.meta_path[:] = [f for f in sys.meta_path if f is not cls]
            _on_torch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


# Modules the patches import, imported by every probe before any patch: an import may draw
# from OS entropy (multiprocessing draws its authkey), so pinned entropy would otherwise depend
# on which factors a run changes.
_PREIMPORT = (
    "concurrent.futures", "multiprocessing.pool", "threading", "datetime", "tempfile", "random",
    "subprocess", "queue",
)  # fmt: skip


def _record_files() -> None:
    """At exit: the Python files of the user's code this process ran (for the audit to tell
    findings in code that ran from findings in code that did not)."""
    main = getattr(sys.modules.get("__main__"), "__file__", None) or (sys.argv or [""])[0]
    files = {os.path.abspath(main)} if main and os.path.isfile(main) else set()
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if (
            name
            and not name.startswith((sys.prefix, sys.base_prefix, _HERE))
            and "site-packages" not in name
            and "dist-packages" not in name
        ):
            files.add(os.path.abspath(name))
    _record({"event": "files", "files": sorted(files)})


def _install() -> None:
    import atexit
    import importlib

    settings = _settings()
    for name in _PREIMPORT:
        importlib.import_module(name)
    if settings.get("completion"):
        _patch_completion(str(settings["completion"]))
    if settings.get("listing"):
        _patch_listing()
    if settings.get("clock"):
        _patch_clock(settings["clock"])
    if settings.get("deterministic"):
        if "torch" in sys.modules:
            _on_torch(sys.modules["torch"])
        else:
            sys.meta_path.insert(0, _TorchHook)
    if settings.get("entropy"):
        _patch_entropy()
    atexit.register(_record_files)
    _record({"event": "loaded"})


if __name__ == "sitecustomize":  # only as the copy on a re-run's PYTHONPATH
    _install()
