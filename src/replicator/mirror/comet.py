"""The Comet sink: a run as a ``comet_ml.OfflineExperiment``, an archive ``comet upload`` sends later.

Comet receives the resolved config as parameters (nested keys as Comet writes them,
``optim|lr``), each metric with its step, the summary and the run's tags as "others"
(``summary_loss``, ``commit``...), the labels ``commit:...``, ``snapshot_ref:...``,
``config_hash:...``, ``seed:...`` as tags, and ``run.json`` as an asset. The archive is
``OFFLINE_DIRECTORY/EXPERIMENT_KEY.zip``, written when the run ends; ``OFFLINE_DIRECTORY`` is the
``offline_directory`` option, else Comet's own ``COMET_OFFLINE_DIRECTORY``, else ``mirror/comet``
inside the run directory.

A later session of the same run (the worker sets ``previous`` after a crash, or for
``replicator mirror``) continues the experiment with ``ExistingOfflineExperiment``: a second
archive ``KEY-SUFFIX.zip`` that ``comet upload`` adds to it. Comet writes an archive only when the
experiment ends, so when the earlier session died before its archive, a new experiment starts.
A resume (``--resume``) is noted as ``resumed_from_step``; Comet keeps the earlier values of the
repeated steps beside the new ones.

Options: ``offline_directory``, ``project`` (Comet's ``project_name``), ``workspace``. The API key
is read by ``comet upload`` from ``COMET_API_KEY`` or ``~/.comet.config``, never from the options;
an offline experiment never opens a connection.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .._util.deps import require
from ..errors import UsageError
from ._options import check_keys, path_option, str_option, tag_labels
from .base import Point, RunInfo, Sink

__all__ = ["CometSink"]

_OPTIONS = ("offline_directory", "project", "workspace")
_CREDENTIALS = "Set COMET_API_KEY or ~/.comet.config for `comet upload` instead."


@dataclass(frozen=True)
class _Settings:
    directory: Path | None
    project: str | None
    workspace: str | None


class CometSink(Sink):
    """Mirror a run into a Comet offline archive (``comet upload ARCHIVE`` sends it)."""

    name: ClassVar[str] = "comet"
    module: ClassVar[str] = "comet_ml"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._experiment: Any = None
        self._archive: Path | None = None
        self._directory: Path | None = None
        self._key: str | None = None

    def check(self) -> None:
        super().check()
        self._settings()

    def _settings(self) -> _Settings:
        check_keys(self.name, self.options, _OPTIONS, credentials=_CREDENTIALS)
        return _Settings(
            directory=path_option(self.name, self.options, "offline_directory"),
            project=str_option(self.name, self.options, "project", None),
            workspace=str_option(self.name, self.options, "workspace", None),
        )

    def open(self, info: RunInfo) -> None:
        settings = self._settings()
        comet_ml = require(self.module, purpose="Mirroring runs to comet")
        _quiet_console()
        configured = os.environ.get("COMET_OFFLINE_DIRECTORY", "").strip()
        directory = (
            settings.directory
            or (Path(configured).expanduser().absolute() if configured else None)
            or info.run_dir / "mirror" / "comet"
        )
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"Mirror 'comet': cannot create the offline directory {directory}: "
                f"{exc.strerror}. Set the option 'offline_directory' to a writable directory."
            ) from exc
        self._directory = directory
        # only what replicator sends: no stdout capture, no environment or code scan
        quiet = {
            "auto_output_logging": False,
            "auto_metric_logging": False,
            "auto_param_logging": False,
            "parse_args": False,
            "log_code": False,
            "log_graph": False,
            "log_git_metadata": False,
            "log_git_patch": False,
            "log_env_details": False,
            "log_env_gpu": False,
            "log_env_host": False,
            "log_env_cpu": False,
            "log_env_disk": False,
            "display_summary_level": 0,
        }
        previous = self.previous.get("ref")
        if isinstance(previous, str) and previous and any(directory.glob(f"{previous}*.zip")):
            # a later session of the same run (after a crash, or `replicator mirror`): a second
            # archive that `comet upload` adds to the same experiment
            experiment = comet_ml.ExistingOfflineExperiment(
                previous_experiment=previous,
                project_name=settings.project,
                workspace=settings.workspace,
                offline_directory=str(directory),
                auto_weight_logging=None,  # its default False reads a deprecated config key
                **quiet,
            )
        else:
            experiment = comet_ml.OfflineExperiment(
                project_name=settings.project,
                workspace=settings.workspace,
                offline_directory=str(directory),
                log_env_network=False,
                **quiet,
            )
        self._experiment = experiment
        self._key = experiment.get_key()
        experiment.set_name(info.name or info.run_id)
        if info.config:
            experiment.log_parameters(dict(info.config))
        experiment.add_tags(tag_labels(info.tags))
        others = {"run_id": info.run_id, "experiment": info.experiment}
        others.update({key: value for key, value in info.tags.items() if key != "status"})
        experiment.log_others(others)

    def send_metrics(self, points: Sequence[Point]) -> None:
        experiment = self._opened()
        for point in points:
            key = point.key if point.rank == 0 else f"rank{point.rank}/{point.key}"
            experiment.log_metric(key, point.value, step=point.step)

    def send_resume(self, step: int) -> None:
        # Comet keeps every value logged for a step; the resumed values follow the earlier ones
        self._opened().log_other("resumed_from_step", step)

    def send_summary(self, summary: Mapping[str, float]) -> None:
        self._opened().log_others({f"summary_{key}": value for key, value in summary.items()})

    def send_artifact(self, path: Path, name: str) -> None:
        # the offline experiment copies the file at once: later changes to it are not sent
        self._opened().log_asset(str(path), file_name=name)

    def close(self, status: str) -> None:
        experiment = self._opened()
        experiment.log_other("status", status)
        experiment.end()
        # KEY.zip, or KEY-SUFFIX.zip for a later session of the same experiment
        key = experiment.get_key()
        archives = sorted(
            Path(experiment.offline_directory).glob(f"{key}*.zip"), key=lambda p: p.stat().st_mtime
        )
        self._archive = archives[-1] if archives else None
        self._experiment = None

    def where(self) -> str:
        if self._archive is not None:
            return str(self._archive)
        return str(self._directory) if self._directory is not None else ""

    def ref(self) -> str | None:
        return str(self._key) if self._key else None

    def _opened(self) -> Any:
        if self._experiment is None:
            raise RuntimeError("The comet sink is not open (open() first, nothing after close()).")
        return self._experiment


def _quiet_console() -> None:
    """Comet logs INFO lines ("COMET INFO: ...") to the console of the process that mirrors;
    keep warnings and errors, unless the user chose a level with COMET_LOGGING_CONSOLE."""
    if "COMET_LOGGING_CONSOLE" not in os.environ:
        logging.getLogger("comet_ml").setLevel(logging.WARNING)
