"""TensorBoard event files into runs: after ``replicator run`` (:func:`import_event_files`, called
by :mod:`replicator.record.imports`) and as runs of their own (:func:`import_tensorboard`, behind
``replicator import tensorboard DIR``).

Imported scalars are appended to the run's own ``metrics.jsonl``, one line per value with
``"source": "tensorboard"``, in the one line format and value encoding of
:mod:`replicator.store.metrics`, so every reader of a run's metrics (``replicator show``,
``load_metrics``, reports) sees them without knowing where they came from. The line keeps the
event's own step and wall time. A tag the script also logged itself (``run.log`` or a
``--metric-pattern``) is not imported again: the script's own values stay the record. Each
value's tag is the metric's key; when the files come from several directories (a
``SummaryWriter`` per split, ``add_scalars``), the key is prefixed with the directory relative to
their common parent (``val/loss``), as TensorBoard shows them as separate runs.

The run's ``summary.json`` gains the last imported value of each key it does not hold yet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.io import append_lines, atomic_write_json
from .._util.warnings import warn
from ..errors import UsageError
from ..store import Store
from ..store.metrics import encode_value, metrics_path
from ..store.tensorboard import EventScalars, find_event_files, read_event_file
from .imported import add_to_summary, commit_only, own_keys
from .recorder import new_run, set_status

__all__ = ["ImportedRun", "TensorBoardImport", "import_event_files", "import_tensorboard"]

SOURCE = "tensorboard"


@dataclass(frozen=True)
class TensorBoardImport:
    """What :func:`import_event_files` put into a run."""

    files: tuple[Path, ...] = ()
    values: int = 0
    keys: tuple[str, ...] = ()
    already_logged: tuple[str, ...] = ()
    """Keys the script logged itself: their TensorBoard values were not imported."""
    problems: tuple[str, ...] = ()
    """One line per damaged or unreadable file: what was read and where it stopped."""
    first: float | None = None
    """The wall time of the earliest event read (None without any)."""
    last: float | None = None
    """The wall time of the latest event read."""

    def as_dict(self, base: Path | None = None) -> dict[str, Any]:
        """The record of this import in run.json (``imports.tensorboard``)."""

        def shown(path: Path) -> str:
            if base is not None:
                try:
                    return str(path.relative_to(base))
                except ValueError:
                    pass
            return str(path)

        out: dict[str, Any] = {
            "files": [shown(p) for p in self.files],
            "values": self.values,
            "keys": list(self.keys),
        }
        if self.already_logged:
            out["already_logged"] = list(self.already_logged)
        if self.problems:
            out["problems"] = list(self.problems)
        return out


def import_event_files(
    run_dir: str | os.PathLike[str], files: Sequence[str | os.PathLike[str]]
) -> TensorBoardImport:
    """Append the scalars of ``files`` to the run's metrics.jsonl; update its summary.

    A damaged file is imported up to the damage, and said in :attr:`TensorBoardImport.problems`
    (the caller warns); a file that cannot be read at all is said there too.
    """
    run_dir = Path(run_dir)
    paths = [Path(f) for f in files]
    if not paths:
        return TensorBoardImport()
    base = _common_dir(paths)
    logged = own_keys(metrics_path(run_dir), SOURCE)
    problems: list[str] = []
    last: dict[str, Any] = {}
    skipped: set[str] = set()
    count = 0
    times: list[float] = []
    for path in paths:
        read = _read(path, problems)
        if read is None:
            continue
        prefix = _prefix(path.parent, base)
        newest: dict[str, Any] = {}
        lines, written = _lines(read, prefix, logged, newest, skipped)
        last.update({prefix + tag: encode_value(value) for tag, value in newest.items()})
        if lines:
            append_lines(metrics_path(run_dir), lines)
        count += written
        if read.scalars:
            times += [min(s[1] for s in read.scalars), max(s[1] for s in read.scalars)]
    if last:
        add_to_summary(run_dir, last)
    return TensorBoardImport(
        files=tuple(paths),
        values=count,
        keys=tuple(last),
        already_logged=tuple(sorted(skipped)),
        problems=tuple(problems),
        first=min(times) if times else None,
        last=max(times) if times else None,
    )


def _read(path: Path, problems: list[str]) -> EventScalars | None:
    try:
        read = read_event_file(path)
    except OSError as exc:
        problems.append(
            f"TensorBoard event file {path} cannot be read ({exc.strerror or exc}); nothing "
            "was imported from it"
        )
        return None
    if read.problem is not None:
        problems.append(
            f"TensorBoard event file {path}: {read.problem}; imported the "
            f"{len(read.scalars)} value(s) before it"
        )
    problems.extend(f"TensorBoard event file {path}: {note}" for note in read.notes)
    return read


def _lines(
    read: EventScalars, prefix: str, logged: set[str], last: dict[str, Any], skipped: set[str]
) -> tuple[list[str], int]:
    lines: list[str] = []
    append = lines.append
    heads: dict[str, str | None] = {}  # tag -> the middle of its lines (None: not imported)
    tail = f', "source": "{SOURCE}"}}'
    for step, wall_time, tag, value in read.scalars:
        head = heads.get(tag, "")
        if head == "":
            key = prefix + tag
            head = None if key in logged else f', "key": {json.dumps(key)}, "value": '
            heads[tag] = head
            if head is None:
                skipped.add(key)
        if head is None:
            continue
        if value - value == 0.0:  # finite: its repr is its JSON
            append(f'{{"step": {step}, "time": {wall_time!r}{head}{value!r}{tail}')
        else:
            encoded = json.dumps(encode_value(value))
            append(f'{{"step": {step}, "time": {wall_time!r}{head}{encoded}{tail}')
        last[tag] = value
    return lines, len(lines)


def _common_dir(paths: Iterable[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def _prefix(folder: Path, base: Path) -> str:
    rel = folder.relative_to(base).as_posix()
    return "" if rel == "." else rel + "/"


# ------------------------------------------------------------- replicator import tensorboard
@dataclass(frozen=True)
class ImportedRun:
    """One run :func:`import_tensorboard` created from one directory of event files."""

    run_id: str
    dir: Path
    source: Path
    imported: TensorBoardImport = field(default_factory=TensorBoardImport)


def import_tensorboard(
    directory: str | os.PathLike[str],
    *,
    store: Store,
    experiment: str | None = None,
) -> list[ImportedRun]:
    """One completed run per directory of event files under ``directory`` (TensorBoard's runs).

    The run's name is the directory relative to ``directory``; its experiment ``experiment``,
    else the name of ``directory``. The code is not captured, except the commit and branch when
    ``directory`` is inside a git repository. A damaged file is imported up to the damage, with
    a RuntimeWarning. Raises :class:`UsageError` when ``directory`` does not exist or holds no
    event file.
    """
    root = Path(directory).resolve()
    if not root.is_dir():
        raise UsageError(f"{directory}: no such directory. Give the folder of your event files.")
    files = find_event_files(root, skip=[store.root])
    if not files:
        raise UsageError(
            f"{directory}: no TensorBoard event files (events.out.tfevents.*) in it or below it."
        )
    groups: dict[Path, list[Path]] = {}
    for path in files:
        groups.setdefault(path.parent, []).append(path)
    code = commit_only(root, wrote="wrote the events")
    name = experiment or root.name or "tensorboard"
    return [_import_one(folder, group, root, store, name, code) for folder, group in groups.items()]


def _import_one(
    folder: Path,
    files: list[Path],
    root: Path,
    store: Store,
    experiment: str,
    code: dict[str, Any],
) -> ImportedRun:
    rel = folder.relative_to(root).as_posix()
    run_id, run_dir, meta = new_run(
        store,
        experiment=experiment,
        name=root.name if rel == "." else rel,
        seed=0,
        command=["replicator", "import", "tensorboard", str(root)],
        cwd=folder,
        launcher="import",
        seeding={"source": "unknown (imported from TensorBoard event files)"},
        extra={"source": {"tool": SOURCE, "dir": str(folder)}, "code": code},
    )
    imported = import_event_files(run_dir, files)
    for problem in imported.problems:
        warn(problem, RuntimeWarning)
    atomic_write_json(run_dir / "code.json", code, fsync=False)
    meta["imports"] = {SOURCE: imported.as_dict(folder)}
    first, last = imported.first, imported.last
    if first is not None:
        meta["started"] = meta["created"] = first
    set_status(run_dir, meta, "completed")
    if first is not None and last is not None:
        # the run lasted as long as its events, not as long as the import
        meta["ended"], meta["duration_s"] = last, round(last - first, 3)
        atomic_write_json(run_dir / "run.json", meta)
    return ImportedRun(run_id, run_dir, folder, imported)
