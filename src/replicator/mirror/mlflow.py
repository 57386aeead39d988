"""The MLflow sink: a run as an MLflow run, through ``MlflowClient``.

MLflow receives the config as params (nested keys flattened with dots: ``optim.lr``), the
metrics with ``log_batch`` (each with its step and time), the tags ``replicator.run_id``,
``replicator.commit`` (also as ``mlflow.source.git.commit``), ``replicator.snapshot_ref``,
``replicator.config_hash``, ``replicator.seed`` and ``replicator.status``, and at the end
``summary.json`` and ``run.json`` as artifacts under ``replicator/`` and the status
(FINISHED, FAILED or KILLED). The MLflow experiment is the run's experiment unless the option
``experiment`` names another.

Options: ``tracking_uri`` (else ``MLFLOW_TRACKING_URI``, else MLflow's default ``./mlruns``),
``experiment``, ``artifact_location`` (for an experiment this sink creates; with a sqlite or
file store the default is ``mlartifacts`` beside it). Credentials come from MLflow's own
variables (``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``/``_TOKEN``) and are never recorded. The
worker retries failed calls itself, so unless set, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` is 0 in
the process that mirrors (and ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT`` true: the recorder's
stdout is the script's output).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .._util.deps import require
from ..redact import redact_url
from ._options import check_keys, str_option
from .base import Point, RunInfo, Sink
from .tensorboard import flatten

__all__ = ["MlflowSink"]

_OPTIONS = ("tracking_uri", "experiment", "artifact_location")
_CREDENTIALS = "Set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN."
_STATUS = {"completed": "FINISHED", "failed": "FAILED"}
_BAD_KEY = re.compile(r"[^\w\-. /:]")
_PARAMS_PER_CALL = 100
_PARAM_LENGTH = 6000


class MlflowSink(Sink):
    """Mirror a run into an MLflow tracking store or server."""

    name: ClassVar[str] = "mlflow"
    module: ClassVar[str] = "mlflow"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._client: Any = None
        self._run_id: str | None = None
        self._experiment_id: str | None = None
        self._uri = ""

    def check(self) -> None:
        super().check()
        check_keys(self.name, self.options, _OPTIONS, credentials=_CREDENTIALS)
        for key in _OPTIONS:
            str_option(self.name, self.options, key, None)

    def _tracking_uri(self) -> str:
        uri = str_option(self.name, self.options, "tracking_uri", None)
        if uri is None:
            import mlflow

            uri = mlflow.get_tracking_uri()
        return uri

    def open(self, info: RunInfo) -> None:
        require("mlflow", purpose="Mirroring runs to mlflow")
        # the worker retries with backoff: MLflow's own retries would only hold the feed up
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        # the recorder's stdout is the script's output, teed to the terminal and stdout.log
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        self._uri = self._tracking_uri()
        client = MlflowClient(tracking_uri=self._uri)
        name = str_option(self.name, self.options, "experiment", None) or info.experiment
        found = client.get_experiment_by_name(name)
        if found is None:
            self._experiment_id = client.create_experiment(
                name, artifact_location=self._artifact_location(name)
            )
        else:
            self._experiment_id = str(found.experiment_id)
        tags = {f"replicator.{k}": v for k, v in info.tags.items()}
        tags["replicator.run_id"] = info.run_id
        if "commit" in info.tags:
            tags["mlflow.source.git.commit"] = info.tags["commit"]
        previous = self.previous.get("ref")
        run = None
        if previous:
            try:
                run = client.get_run(previous)
            except Exception:  # gone from this store: a new MLflow run
                run = None
        if run is None:
            run = client.create_run(
                self._experiment_id,
                start_time=int(info.started * 1000),
                tags=tags,
                run_name=info.name or info.run_id,
            )
        else:
            client.update_run(run.info.run_id, status="RUNNING")
        self._client = client
        self._run_id = run.info.run_id
        params = [Param(_key(k), _param_value(v)) for k, v in sorted(flatten(info.config).items())]
        logged = dict(run.data.params)
        params = [p for p in params if p.key not in logged]
        for start in range(0, len(params), _PARAMS_PER_CALL):
            client.log_batch(self._run_id, params=params[start : start + _PARAMS_PER_CALL])
        client.log_batch(self._run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def _artifact_location(self, experiment: str) -> str | None:
        given = str_option(self.name, self.options, "artifact_location", None)
        if given is not None:
            return given
        parts = urlsplit(self._uri)
        if parts.scheme == "sqlite":
            base = Path(self._uri.split(":///", 1)[-1]).parent
        elif parts.scheme in ("", "file"):
            return None  # a file store keeps artifacts in its own folders
        else:
            return None  # a server decides
        return (base / "mlartifacts" / experiment).absolute().as_uri()

    def send_metrics(self, points: Sequence[Point]) -> None:
        from mlflow.entities import Metric

        metrics = [
            Metric(_key(p.key), p.value, int(p.time * 1000), p.step if p.step is not None else 0)
            for p in points
        ]
        self._client.log_batch(self._run_id, metrics=metrics)

    def send_summary(self, summary: Mapping[str, float]) -> None:
        self._log_text(json.dumps(summary, indent=2, default=str), "summary.json")

    def send_artifact(self, path: Path, name: str) -> None:
        self._log_text(path.read_text(encoding="utf-8"), name)

    def _log_text(self, text: str, name: str) -> None:
        with tempfile.TemporaryDirectory(prefix="replicator-mlflow-") as tmp:
            file = Path(tmp) / name
            file.write_text(text, encoding="utf-8")
            self._client.log_artifact(self._run_id, str(file), artifact_path="replicator")

    def close(self, status: str) -> None:
        from mlflow.entities import RunTag

        self._client.log_batch(self._run_id, tags=[RunTag("replicator.status", status)])
        self._client.set_terminated(self._run_id, status=_STATUS.get(status, "KILLED"))

    def where(self) -> str:
        uri = redact_url(self._uri)
        if self._run_id is None:
            return uri
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/experiments/{self._experiment_id}/runs/{self._run_id}"
        return f"{uri} run {self._run_id}"

    def ref(self) -> str | None:
        return self._run_id


def _key(key: str) -> str:
    """A metric or param name MLflow accepts (letters, digits, ``_-. /:``)."""
    return _BAD_KEY.sub("_", key)[:250] or "_"


def _param_value(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)
    return text[:_PARAM_LENGTH]
