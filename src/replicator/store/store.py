"""The local store: plain run directories under ``.replicator/`` plus a rebuildable SQLite index.

Layout (``schema_version`` 1)::

    .replicator/
      index.sqlite                  cache of run.json + summary.json; delete it any time
      experiments/NAME/sweeps/ID.json   seeds drawn for a ``--seeds N`` sweep (root + list)
      runs/RUN_ID/                  one directory per run; a run writes only here
        run.json                    identity, status, command, seed, resolved config, code summary
        status.jsonl                status history (append-only)
        heartbeat                   touched while the recorder is alive
        resume.lock                 held by the one ``replicator run --resume`` of the run
        config.yaml  hparams.csv    resolved config, flat parameters
        config/                     raw config files and overrides as given
        code.json  code.patch       git facts; patch of the snapshot against HEAD
        environment.json            python, OS, packages with origins, lock files, env vars
        hardware.json               CPU, memory, GPUs
        stdout.log  stderr.log      captured output (tee'd)
        metrics.jsonl               {"step", "time", "key", "value"} per line, append-only
        metrics.rank{r}.jsonl       rank r > 0 of a distributed run (rank 0: metrics.jsonl)
        ranks/rank{r}.json          each rank's RANK, LOCAL_RANK, WORLD_SIZE, host, pid, status
        summary.json                final metrics
        outputs.json                files the command produced, with size and hash

The store is found from ``REPLICATOR_STORE``, else a ``replicator.yaml`` (key ``store:``) in the
project root, else ``.replicator/`` in the project root (the nearest directory holding
``replicator.yaml``, ``.replicator/`` or ``.git``, else the working directory). The other keys of
``replicator.yaml`` are :attr:`Store.settings` (:mod:`replicator.store.settings`).

The index is a cache only readers write (:mod:`replicator.store.index`): listing brings it up to
date from the run directories, so concurrent runs never contend on SQLite and the store works on
NFS or Lustre. If SQLite fails (locking on a shared filesystem, a damaged file) listing reads the
files directly. What a reader gets of one run is a :class:`~replicator.store.record.RunRecord`.
"""

from __future__ import annotations

import errno
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._protocol import REPLICATOR_HEARTBEAT_STALE_S, REPLICATOR_STORE
from .._util.warnings import warn
from ..errors import DamagedRunError, RunNotFoundError, StoreError, UsageError
from .index import delete_index, read_indexed
from .record import HEARTBEAT_STALE_S, RunRecord, read_run, read_run_files, record_of
from .settings import SETTINGS_FILE, Settings, read_settings

__all__ = [
    "STORE_DIRNAME",
    "DamagedRun",
    "Store",
    "StoreLike",
    "find_project_root",
    "new_run_id",
]

STORE_DIRNAME = ".replicator"
"""The store's directory in the project root, unless ``REPLICATOR_STORE`` or replicator.yaml
names another."""


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest directory at or above ``start`` with replicator.yaml, .replicator/ or .git."""
    here = Path(start or os.getcwd()).resolve()
    # The nearest marker wins: a project's own repository is not swallowed by a store that
    # happens to exist in a parent folder (say /tmp/.replicator).
    for candidate in (here, *here.parents):
        if (
            (candidate / "replicator.yaml").is_file()
            or (candidate / STORE_DIRNAME).is_dir()
            or (candidate / ".git").exists()
        ):
            return candidate
    return here


_last_id: tuple[str, int] = ("", -1)


def new_run_id(now: float | None = None) -> str:
    """``YYYYMMDD-HHMMSS-xxxx``: sortable by time to the millisecond.

    The suffix is the millisecond (high 10 bits) and 6 random bits; ids issued by one process
    never go backwards. Uniqueness across concurrent starts comes from creating the directory
    with ``mkdir`` (which fails when the name exists) and retrying; see
    :meth:`Store.create_run_dir`.
    """
    global _last_id
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    millis = int((now % 1) * 1000) % 1000
    suffix = (millis << 6) | random.getrandbits(6)
    if stamp == _last_id[0] and suffix <= _last_id[1]:
        suffix = min(_last_id[1] + 1, 0xFFFF)
    _last_id = (stamp, suffix)
    return f"{stamp}-{suffix:04x}"


@dataclass(frozen=True)
class DamagedRun:
    """A run directory that listings skipped: its run.json is unreadable or holds a field of the
    wrong type. ``problem`` is the one-line message naming the directory and the field;
    ``experiment`` is the run's experiment where run.json still tells it, else None."""

    dir: Path
    problem: str
    experiment: str | None = None


class Store:
    """A replicator store on disk. ``Store.open()`` finds the one for the working directory."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        project_root: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
    ):
        self._settings = settings
        self.root = Path(root).resolve()
        self.project_root = Path(project_root).resolve() if project_root else self.root.parent
        self.runs_dir = self.root / "runs"
        self.experiments_dir = self.root / "experiments"
        self.index_path = self.root / "index.sqlite"
        self.problems: list[str] = []
        """What the last :meth:`records` (or :meth:`select`) skipped, one line each."""
        self.damaged: list[DamagedRun] = []
        """The runs the last :meth:`records` (or :meth:`select`) skipped as damaged."""

    @classmethod
    def open(cls, start: str | os.PathLike[str] | None = None) -> Store:
        """The store for ``start`` (default: the working directory); see the module docstring.

        The project's ``replicator.yaml`` is read (and checked) here: :attr:`settings`."""
        env = REPLICATOR_STORE.get()
        project = find_project_root(start)
        settings = read_settings(project / SETTINGS_FILE)
        root = env.expanduser() if env is not None else settings.store or project / STORE_DIRNAME
        return cls(root, project_root=project, settings=settings)

    @property
    def settings(self) -> Settings:
        """The project's ``replicator.yaml`` (:mod:`replicator.store.settings`), read on first
        use for a store given by its path."""
        if self._settings is None:
            self._settings = read_settings(self.project_root / SETTINGS_FILE)
        return self._settings

    @property
    def heartbeat_stale_s(self) -> float:
        """Seconds without a heartbeat after which a run or a resume lock recorded on another
        host counts as crashed: ``REPLICATOR_HEARTBEAT_STALE_S``, else ``heartbeat_stale_s`` in
        replicator.yaml, else :data:`~replicator.store.HEARTBEAT_STALE_S` (120)."""
        if REPLICATOR_HEARTBEAT_STALE_S.is_set():
            return REPLICATOR_HEARTBEAT_STALE_S.get() or HEARTBEAT_STALE_S
        return self.settings.heartbeat_stale_s or HEARTBEAT_STALE_S

    @classmethod
    def coerce(cls, store: StoreLike) -> Store:
        """The store a ``store=`` argument names: a :class:`Store` as it is, a path as the store
        directory, ``None`` as the store of the working directory (:meth:`open`)."""
        if isinstance(store, Store):
            return store
        if store is None:
            return cls.open()
        if isinstance(store, (str, os.PathLike)):
            return cls(store)
        raise UsageError(
            f"store must be a Store, the path of a store directory or None, "
            f"got {type(store).__name__} {store!r}."
        )

    # ----------------------------------------------------------------- writing (one run only)
    def create_run_dir(self, *, now: float | None = None) -> tuple[str, Path]:
        """Create a fresh run directory with a unique, time-sortable id."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if StoreError.is_environmental(exc):
                raise StoreError.from_os_error(exc, path=self.root) from exc
            raise StoreError(f"Cannot create the store at {self.root}: {exc}") from exc
        for _ in range(1000):
            run_id = new_run_id(now)
            path = self.runs_dir / run_id
            try:
                path.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise StoreError.from_os_error(exc, path=self.root) from exc
            return run_id, path
        raise StoreError(f"Could not find a free run id in {self.runs_dir} after 1000 tries.")

    def write_sweep(self, experiment: str, sweep: dict[str, Any]) -> Path:
        """Store the seeds drawn for a sweep under experiments/NAME/sweeps/ID.json."""
        from .._util.io import atomic_write_json

        folder = self.experiments_dir / _safe_name(experiment) / "sweeps"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return atomic_write_json(folder / f"{sweep['id']}.json", sweep)
        except OSError as exc:
            raise StoreError.from_os_error(exc, path=self.root) from exc

    # ----------------------------------------------------------------- reading
    def run_dirs(self) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(self.runs_dir), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith("."):
                yield Path(entry.path)

    def resolve(self, ref: str) -> Path:
        """The run directory for an id, a unique id prefix or suffix, a run name, a path, ``last``
        or ``last~N`` (N runs before the last)."""
        ref = ref.strip()
        if not ref:
            raise RunNotFoundError("Empty run id. Use `replicator ls` to list runs.")
        # the id as messages show it: a pasted log line must not flood the terminal
        shown = " ".join(ref.split())
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        try:
            candidate = Path(ref)
            if (candidate / "run.json").is_file():
                return candidate.resolve()
        except (OSError, ValueError):
            pass  # not a usable path (too long, a NUL byte, unreadable): try it as an id
        ids = [p.name for p in self.run_dirs()]
        m = re.fullmatch(r"(?:last|latest)(?:~(\d*))?", ref)
        if m:
            # last~N: N runs before the last (git-style); last~ is last~1
            digits = m.group(1) or ""
            if m.group(1) is None and "~" not in ref:
                back = 0
            else:
                back = int(digits or 1) if len(digits) <= 18 else len(ids)
            if back >= len(ids):
                raise RunNotFoundError(
                    f"'{shown}': the store {self.root} has {len(ids)} run(s)."
                    if ids
                    else f"The store {self.root} has no runs yet."
                )
            return self.runs_dir / ids[-1 - back]
        if ref in ids:
            return self.runs_dir / ref
        matches = [i for i in ids if i.startswith(ref) or i.endswith(ref)]
        if not matches:
            named = [r.id for r in self.records() if r.name == ref]
            matches = named
        if len(matches) == 1:
            return self.runs_dir / matches[0]
        if not matches:
            raise RunNotFoundError(
                f"No run '{shown}' in {self.root}. Use `replicator ls` to list runs."
            )
        listed = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise RunNotFoundError(
            f"'{shown}' matches {len(matches)} runs ({listed}); give more of the id."
        )

    def get(self, ref: str) -> RunRecord:
        """The record of one run. A run.json field of the wrong type does not hide the run: it
        is left out (``meta["damaged"]`` names it) and a RuntimeWarning says so."""
        record = read_run(self.resolve(ref), partial=True, stale_after=self.heartbeat_stale_s)
        for problem in record.meta.get("damaged") or ():
            warn(f"{record.dir}: damaged {problem}; shown without it.", RuntimeWarning)
        return record

    def records(self, *, use_index: bool = True) -> list[RunRecord]:
        """Every readable run, oldest first; damaged runs go to ``self.problems`` and
        ``self.damaged``, not raised. The index is used when it can be written; else (a
        read-only store, SQLite locking on a shared filesystem) the files are read directly.
        A damaged index is deleted and rebuilt."""
        self.problems = []
        self.damaged = []
        stale_after = self.heartbeat_stale_s
        found = self._indexed_files() if use_index and self.runs_dir.is_dir() else None
        records = []
        if found is None:
            found = []
            for run_dir in self.run_dirs():
                try:
                    found.append((run_dir, *read_run_files(run_dir)))
                except StoreError as exc:
                    self._skip(run_dir, exc)
        for run_dir, meta, summary in found:
            try:
                records.append(record_of(run_dir, meta, summary, stale_after=stale_after))
            except DamagedRunError as exc:
                experiment = meta.get("experiment") or "default"
                self._skip(run_dir, exc, str(experiment) if isinstance(experiment, str) else None)
        return records

    def _indexed_files(self) -> list[tuple[Path, dict[str, Any], dict[str, Any]]] | None:
        """(run directory, run.json, summary.json) through the index; None when the index
        cannot be used (the caller reads the files)."""
        if not os.access(self.root, os.W_OK):
            return None  # a read-only store: never try to write the index
        problems: list[tuple[Path, str]] = []
        for attempt in (1, 2):
            problems = []
            try:
                found = read_indexed(self.index_path, self.run_dirs(), problems)
            except sqlite3.OperationalError as exc:
                if _index_not_writable(exc):
                    return None
                self.problems.append(f"index unusable ({exc}); read the run directories directly")
                return None
            except sqlite3.Error as exc:
                # not a database, a malformed page: the index is a cache, so start it again
                if attempt == 2 or not self._delete_index_quietly():
                    self.problems.append(
                        f"index unusable ({exc}); read the run directories directly"
                    )
                    return None
                self.problems.append(f"index unusable ({exc}); rebuilt it from the run directories")
                continue
            break
        for run_dir, problem in problems:
            self._skip(run_dir, problem)
        return found

    def _delete_index_quietly(self) -> bool:
        try:
            delete_index(self.index_path)
        except OSError:
            return False
        return True

    def _skip(self, run_dir: Path, problem: Exception | str, experiment: str | None = None) -> None:
        """Note a run that listings skip, in ``problems`` and ``damaged``."""
        self.problems.append(str(problem))
        self.damaged.append(DamagedRun(run_dir, str(problem), experiment))

    def select(
        self,
        *,
        experiment: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        where: str | Callable[[dict[str, Any]], bool] | None = None,
        damaged: list[DamagedRun] | None = None,
    ) -> list[RunRecord]:
        """Runs matching the filters, oldest first: ``where`` is a ``--where`` expression over
        ``RunRecord.as_dict()`` (see :mod:`replicator.store.query`) or a predicate.

        Damaged runs are skipped: all of them are in ``self.damaged`` after the call; those of
        ``experiment`` (or whose experiment is unknown) are added to ``damaged`` when a list is
        given, so that ``report`` can say how many it skipped."""
        records = self.records()
        wanted = None
        if experiment is not None:
            wanted = {experiment} if isinstance(experiment, str) else set(experiment)
            records = [r for r in records if r.experiment in wanted]
        if damaged is not None:
            damaged.extend(
                d
                for d in self.damaged
                if wanted is None or d.experiment is None or d.experiment in wanted
            )
        if status is not None:
            allowed = {status} if isinstance(status, str) else set(status)
            records = [r for r in records if r.status in allowed]
        if where is None:
            return records
        from ..errors import QueryError
        from .query import compile_where

        predicate = where if callable(where) else compile_where(where)
        kept = []
        for record in records:
            try:
                keep = predicate(record.as_dict())
            except QueryError:
                raise
            except Exception as exc:
                raise QueryError(f"--where {where!r} failed on run {record.id}: {exc}") from exc
            if keep:
                kept.append(record)
        return kept

    def rebuild_index(self) -> int:
        """Delete and recreate the index from the run directories; returns the run count."""
        try:
            delete_index(self.index_path)
            if self.runs_dir.is_dir() and not os.access(self.root, os.W_OK):
                # say why without writing anything: a read-only filesystem or permissions
                code = errno.EROFS if os.statvfs(self.root).f_flag & os.ST_RDONLY else errno.EACCES
                raise OSError(code, os.strerror(code), str(self.index_path))
        except OSError as exc:
            raise StoreError.from_os_error(
                exc, action="rebuild the index at", path=self.index_path
            ) from exc
        return len(self.records())


def _index_not_writable(exc: sqlite3.OperationalError) -> bool:
    """SQLite's words for an index it cannot create or write (read-only store, permissions)."""
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


StoreLike = Store | str | os.PathLike[str] | None
"""What every ``store=`` argument accepts: a :class:`Store`, the path of a store directory, or
None for the store of the working directory. :meth:`Store.coerce` turns it into a Store."""


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "default"
