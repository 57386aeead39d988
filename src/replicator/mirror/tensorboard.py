"""The TensorBoard sink: event files written with the ``tensorboard`` package's own writer.

TensorBoard receives each metric as a scalar (tag = key, at its step and wall time), the config
as hyperparameters (the HParams tab; nested keys flattened with dots) and as a text entry
``replicator/config``, the run's tags (commit, snapshot ref, config hash, seed) as the text entry
``replicator/tags``, and at the end the summary and status as ``replicator/summary``. A resumed
run writes a session START at the step after its resume point, so TensorBoard drops the values
logged past it by the dead process, as it does for its own writers. No torch, no TensorFlow.

Options: ``log_dir``: the event files go to ``LOG_DIR/EXPERIMENT/RUN_ID`` (point
``tensorboard --logdir LOG_DIR`` at it); default ``mirror/tensorboard`` inside the run directory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from .._util.deps import require
from ._options import check_keys, path_option
from .base import Point, RunInfo, Sink

__all__ = ["TensorBoardSink", "flatten"]

_OPTIONS = ("log_dir",)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class TensorBoardSink(Sink):
    """Mirror a run into TensorBoard event files."""

    name: ClassVar[str] = "tensorboard"
    module: ClassVar[str] = "tensorboard"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._writer: Any = None
        self._dir: Path | None = None
        self._steps: dict[str, int] = {}

    def check(self) -> None:
        super().check()
        check_keys(self.name, self.options, _OPTIONS, credentials="")
        path_option(self.name, self.options, "log_dir")

    def open(self, info: RunInfo) -> None:
        require("tensorboard", purpose="Mirroring runs to tensorboard")
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        root = path_option(self.name, self.options, "log_dir")
        self._dir = (
            root / info.experiment / info.run_id
            if root is not None
            else info.run_dir / "mirror" / "tensorboard"
        )
        self._dir.mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(self._dir), max_queue_size=1024, flush_secs=5)
        self._text("replicator/tags", _table(info.tags), info.started)
        if info.config:
            self._text("replicator/config", _json(info.config), info.started)
            self._hparams(info)
        self._writer.flush()

    def _hparams(self, info: RunInfo) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.hparams import summary_v2

        values = {}
        for key, value in flatten(info.config).items():
            if isinstance(value, (bool, int, float, str)):
                values[key] = value
            elif value is not None:
                values[key] = json.dumps(value, default=str)
        if values:
            summary = summary_v2.hparams_pb(
                values, trial_id=info.run_id, start_time_secs=info.started
            )
            self._writer.add_event(event_pb2.Event(wall_time=info.started, summary=summary))

    def _text(self, tag: str, text: str, wall_time: float, step: int = 0) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.text import summary_v2

        summary = summary_v2.text_pb(tag, text)
        self._writer.add_event(event_pb2.Event(wall_time=wall_time, step=step, summary=summary))

    def send_metrics(self, points: Sequence[Point]) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        add = self._writer.add_event
        Event, Summary, Value = event_pb2.Event, summary_pb2.Summary, summary_pb2.Summary.Value
        for point in points:
            step = point.step
            if step is None:  # TensorBoard needs a step: count the key's values
                step = self._steps.get(point.key, -1) + 1
            self._steps[point.key] = step
            value = Value(tag=point.key, simple_value=point.value)
            add(Event(wall_time=point.time, step=step, summary=Summary(value=[value])))
        self._writer.flush()

    def send_resume(self, step: int) -> None:
        from tensorboard.compat.proto import event_pb2

        # TensorBoard's reader purges the values at or after a START event's step.
        log = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
        self._writer.add_event(event_pb2.Event(step=step + 1, session_log=log))
        self._writer.flush()

    def send_summary(self, summary: Mapping[str, float]) -> None:
        import time

        self._text(
            "replicator/summary",
            _table(summary),
            time.time(),
            step=max(self._steps.values(), default=0),
        )

    def close(self, status: str) -> None:
        import time

        self._text(
            "replicator/status", status, time.time(), step=max(self._steps.values(), default=0)
        )
        self._writer.flush()
        self._writer.close()

    def where(self) -> str:
        return str(self._dir) if self._dir is not None else ""


def _table(values: Mapping[str, Any]) -> str:
    """A markdown table (TensorBoard's text tab renders markdown)."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in values.items())
    return "| key | value |\n|---|---|\n" + rows


def _json(config: Mapping[str, Any]) -> str:
    return "```\n" + json.dumps(config, indent=2, default=str) + "\n```"
