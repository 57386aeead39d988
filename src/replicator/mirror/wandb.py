"""The W&B sink: a run as a W&B run in offline mode, a directory ``wandb sync`` uploads later.

W&B receives the config (nested, as logged), the metrics with ``run.log(..., step=...)`` (the
points of one step in one call), the tags ``commit:...``, ``snapshot_ref:...``,
``config_hash:...``, ``seed:...``, the summary and status in ``run.summary``
(``replicator_status``), and ``run.json`` among the run's files. Tags are cut to W&B's 64
characters; the run's notes hold the full values. The W&B run id is the
replicator run id, so a resumed run (or ``replicator mirror``) continues the same W&B run.

Options: ``dir`` (W&B writes ``DIR/wandb/offline-run-*``; default ``mirror/wandb`` inside the
run directory), ``project`` (default: the run's experiment), ``entity``, ``group``, ``job_type``,
``mode`` (``offline``, the default, or ``online``, which reads the API key from W&B's own places:
``WANDB_API_KEY`` or ``~/.netrc``). Upload an offline run with ``wandb sync DIR/wandb/offline-run-*``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from .._util.deps import require
from ..errors import UsageError
from ._options import check_keys, path_option, str_option, tag_labels
from .base import Point, RunInfo, Sink

__all__ = ["WandbSink"]

_OPTIONS = ("dir", "project", "entity", "group", "job_type", "mode")
_CREDENTIALS = "Set WANDB_API_KEY or run `wandb login` (it writes ~/.netrc)."


class WandbSink(Sink):
    """Mirror a run into a W&B offline run directory."""

    name: ClassVar[str] = "wandb"
    module: ClassVar[str] = "wandb"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._run: Any = None
        self._where = ""

    def check(self) -> None:
        super().check()
        check_keys(self.name, self.options, _OPTIONS, credentials=_CREDENTIALS)
        path_option(self.name, self.options, "dir")
        for key in ("project", "entity", "group", "job_type"):
            str_option(self.name, self.options, key, None)
        mode = str_option(self.name, self.options, "mode", "offline")
        if mode not in ("offline", "online"):
            raise UsageError(
                f"Mirror 'wandb': option 'mode' must be offline or online, got {mode!r}."
            )

    def open(self, info: RunInfo) -> None:
        wandb = require("wandb", purpose="Mirroring runs to wandb")
        root = path_option(self.name, self.options, "dir") or info.run_dir / "mirror" / "wandb"
        root.mkdir(parents=True, exist_ok=True)
        option = self.options.get
        settings = wandb.Settings(silent=True, console="off", save_code=False)
        self._run = wandb.init(
            mode=str_option(self.name, self.options, "mode", "offline"),
            dir=str(root),
            project=option("project") or info.experiment,
            entity=option("entity"),
            group=option("group"),
            job_type=option("job_type"),
            id=_wandb_id(info.run_id),
            name=info.name or info.run_id,
            config=dict(info.config),
            tags=[label[:64] for label in tag_labels(info.tags)],  # W&B's limit
            notes=" ".join(f"{k}={v}" for k, v in info.tags.items() if k != "status"),
            resume="allow",
            reinit="create_new",
            settings=settings,
        )
        self._where = str(Path(self._run.dir).parent)

    def send_metrics(self, points: Sequence[Point]) -> None:
        run = self._run
        group: dict[str, float] = {}
        step: int | None = None
        for point in points:
            if group and (point.step != step or point.key in group):
                run.log(group, step=step)
                group = {}
            step = point.step
            group[point.key] = point.value
        if group:
            run.log(group, step=step)

    def send_summary(self, summary: Mapping[str, float]) -> None:
        self._run.summary.update(dict(summary))

    def send_artifact(self, path: Path, name: str) -> None:
        files = Path(self._run.dir)
        target = files / "replicator" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        self._run.save(str(target), base_path=str(files), policy="now")

    def close(self, status: str) -> None:
        self._run.summary["replicator_status"] = status
        self._run.finish(exit_code=0 if status == "completed" else 1)

    def where(self) -> str:
        return self._where

    def ref(self) -> str | None:
        return self._run.id if self._run is not None else None


def _wandb_id(run_id: str) -> str:
    """W&B run ids allow letters, digits, ``-`` and ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in run_id)[:64]
