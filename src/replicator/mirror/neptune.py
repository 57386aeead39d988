"""The Neptune sink: a run as a Neptune run in offline mode, which ``neptune sync`` uploads later.

Neptune receives the resolved config under ``parameters`` (values Neptune has no type for, such
as lists and None, as their text), each metric as a series under ``metrics/KEY`` with its step
and time (NaN and infinity, which Neptune cannot store, are left out), the summary under
``summary``, the run's tags under ``replicator/tags`` and as ``sys/tags`` labels
(``commit:...``, ``snapshot_ref:...``, ``config_hash:...``, ``seed:...``), the run id and
experiment under ``replicator/``, and ``run.json`` under ``replicator/files``.

Neptune writes the offline run to ``DATA_DIRECTORY/offline/run__ID__PID__KEY/``; ``DATA_DIRECTORY``
is the ``data_directory`` option, else Neptune's own ``NEPTUNE_DATA_DIRECTORY``, else
``mirror/neptune`` inside the run directory. Upload it with
``neptune sync --path DATA_DIRECTORY --project WORKSPACE/PROJECT``: an offline run has no project
until then. The ``project`` option (or ``NEPTUNE_PROJECT``) is checked and given to Neptune, which
does not keep it in an offline run: give it again to ``neptune sync``.
A later session of the same run (after a crash, or ``replicator mirror``) is a second offline run
(Neptune cannot add to an offline run once it stopped); both carry ``replicator/run_id``. A resume
(``--resume``) is noted as ``replicator/resumed_from_step``.
The API token is read by ``neptune sync`` from ``NEPTUNE_API_TOKEN``, never from the options; the
sink never opens a connection.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from .._util.deps import require
from ..errors import UsageError
from ._options import check_keys, path_option, str_option, tag_labels
from .base import Point, RunInfo, Sink

__all__ = ["NeptuneSink"]

_OPTIONS = ("project", "data_directory")
_CREDENTIALS = "Set NEPTUNE_API_TOKEN for `neptune sync` instead."
_PROJECT = re.compile(r"[\w.-]+/[\w.-]+")
# Neptune reads its data directory from the environment when a run starts; two sinks opening at
# once in one process must not see each other's.
_ENVIRONMENT_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Settings:
    project: str | None
    directory: Path | None


class NeptuneSink(Sink):
    """Mirror a run into a Neptune offline run directory (``neptune sync`` uploads it)."""

    name: ClassVar[str] = "neptune"
    module: ClassVar[str] = "neptune"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._run: Any = None
        self._directory: Path | None = None

    def check(self) -> None:
        super().check()
        self._settings()

    def _settings(self) -> _Settings:
        check_keys(self.name, self.options, _OPTIONS, credentials=_CREDENTIALS)
        project = str_option(self.name, self.options, "project", None)
        source = "option 'project'"
        if project is None and os.environ.get("NEPTUNE_PROJECT"):
            project, source = os.environ["NEPTUNE_PROJECT"].strip(), "NEPTUNE_PROJECT"
        if project is not None and not _PROJECT.fullmatch(project):
            raise UsageError(
                f"Mirror 'neptune': {source} must be WORKSPACE/PROJECT, got {project!r}."
            )
        return _Settings(project, path_option(self.name, self.options, "data_directory"))

    def open(self, info: RunInfo) -> None:
        settings = self._settings()
        neptune = _import_neptune()
        directory = (
            settings.directory or _environment_directory() or info.run_dir / "mirror" / "neptune"
        )
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"Mirror 'neptune': cannot create the data directory {directory}: "
                f"{exc.strerror}. Set the option 'data_directory' to a writable directory."
            ) from exc
        self._directory = directory
        logger = logging.getLogger("neptune")
        if logger.level in (logging.NOTSET, logging.INFO):
            # Neptune sets INFO and prints "Neptune initialized..." to the stdout of the
            # mirroring process; keep its warnings and errors
            logger.setLevel(logging.WARNING)
        with _ENVIRONMENT_LOCK:
            saved = os.environ.get("NEPTUNE_DATA_DIRECTORY")
            os.environ["NEPTUNE_DATA_DIRECTORY"] = str(directory)
            try:
                run = neptune.init_run(
                    project=settings.project,
                    mode="offline",
                    name=info.name or info.run_id,
                    # only what replicator sends: no output capture, monitoring or code scan
                    capture_stdout=False,
                    capture_stderr=False,
                    capture_hardware_metrics=False,
                    capture_traceback=False,
                    fail_on_exception=False,
                    source_files=[],
                    git_ref=False,
                    dependencies=None,
                    tags=tag_labels(info.tags),
                )
            finally:
                if saved is None:
                    os.environ.pop("NEPTUNE_DATA_DIRECTORY", None)
                else:
                    os.environ["NEPTUNE_DATA_DIRECTORY"] = saved
        self._run = run
        if info.config:
            from neptune.utils import stringify_unsupported

            run["parameters"] = stringify_unsupported(dict(info.config))
        run["replicator/run_id"] = info.run_id
        run["replicator/experiment"] = info.experiment
        tags = {key: str(value) for key, value in info.tags.items() if key != "status"}
        if tags:
            run["replicator/tags"] = tags

    def send_metrics(self, points: Sequence[Point]) -> None:
        run = self._opened()
        for point in points:
            if not math.isfinite(point.value):
                continue  # Neptune has no NaN or infinity (it would skip them with a warning)
            key = point.key if point.rank == 0 else f"rank{point.rank}/{point.key}"
            run[f"metrics/{key}"].append(point.value, step=point.step, timestamp=point.time)

    def send_resume(self, step: int) -> None:
        # a Neptune series cannot drop values: the resumed run's repeated steps are refused by
        # Neptune at `neptune sync`, its later steps continue the series
        self._opened()["replicator/resumed_from_step"] = step

    def send_summary(self, summary: Mapping[str, float]) -> None:
        if summary:
            from neptune.utils import stringify_unsupported

            self._opened()["summary"] = stringify_unsupported(dict(summary))

    def send_artifact(self, path: Path, name: str) -> None:
        from neptune.types import File

        # the file's content now, kept in Neptune's upload folder: a later rewrite of the
        # run's file does not change what `neptune sync` sends
        extension = path.suffix.lstrip(".") or None
        self._opened()[f"replicator/files/{name}"].upload(
            File.from_content(path.read_bytes(), extension=extension)
        )

    def close(self, status: str) -> None:
        run = self._opened()
        run["replicator/status"] = status
        if status != "completed":
            run["sys/failed"] = True
        run.stop()
        self._run = None

    def where(self) -> str:
        return str(self._directory) if self._directory is not None else ""

    def _opened(self) -> Any:
        if self._run is None:
            raise RuntimeError(
                "The neptune sink is not open (open() first, nothing after close())."
            )
        return self._run


def _environment_directory() -> Path | None:
    value = os.environ.get("NEPTUNE_DATA_DIRECTORY", "").strip()
    return Path(value).expanduser().absolute() if value else None


def _import_neptune() -> ModuleType:
    with warnings.catch_warnings():
        # neptune 1.x imports bravado, which touches jsonschema.RefResolver (deprecated there)
        warnings.filterwarnings(
            "ignore", message=r"jsonschema\.RefResolver is deprecated", category=DeprecationWarning
        )
        return require("neptune", purpose="Mirroring runs to neptune")
