"""Hydra apps recorded in-process: a Hydra callback that opens a replicator run for each job.

``replicator run -- python app.py model=big`` needs nothing in the app: when the command ends,
replicator reads Hydra's ``.hydra/`` folders (:mod:`replicator.record.hydra`). The callback is
the in-process way, for an app started with plain ``python app.py``: each job (one for a run,
one per parameter combination of ``-m``) becomes a replicator run whose config is Hydra's
composed config, seeded, with the job's overrides, and the job's status at its end::

    # conf/config.yaml
    hydra:
      callbacks:
        replicator:
          _target_: replicator.integrations.hydra.ReplicatorCallback
          experiment: my-experiment      # optional

or on the command line, without touching the config:
``python app.py +hydra.callbacks.replicator._target_=replicator.integrations.hydra.ReplicatorCallback``.

Inside the job, :func:`current_run` is the run: ``current_run().log({...})`` records metrics.
Under ``replicator run`` a single job joins the launcher's run; the jobs of a multirun are left
to the launcher, which records one run per job when the command ends.
Hydra is an optional dependency: ``pip install 'replicator[hydra]'``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .._protocol import ChildContext
from .._util.deps import require
from ..record.hydra import read_hydra_job, record_hydra_job
from ..record.tensorboard import import_event_files
from ..store.tensorboard import find_event_files

require("hydra", purpose="replicator.integrations.hydra")
from hydra.experimental.callback import Callback  # noqa: E402 (after the clear error above)

__all__ = ["ReplicatorCallback", "current_run"]

_current: Any = None


def current_run() -> Any:
    """The run :class:`ReplicatorCallback` opened for the job now running (None outside one):
    ``current_run().log({"loss": loss}, step=step)`` inside the task function."""
    return _current


class ReplicatorCallback(Callback):
    """Open a replicator run when a Hydra job starts and finish it with the job's status.

    ``experiment`` names the runs' experiment (default: the job's name, Hydra's
    ``hydra.job.name``); ``store`` is the store's path (default: the store of the directory the
    app started in, found before Hydra changes into the job's folder).
    """

    def __init__(self, experiment: str | None = None, store: str | None = None) -> None:
        from ..store import Store

        self.experiment = experiment
        # Hydra may change into the job's output folder (hydra.job.chdir); the store is the
        # project's, found from where the app was started.
        self.store = Store.coerce(store) if store is not None else Store.open()
        self.run: Any = None
        self.started = 0.0
        self.job_dir = Path()

    def on_job_start(self, config: Any, *, task_function: Any = None, **kwargs: Any) -> None:
        """Start (or join) the job's run with the composed config (without ``hydra:``)."""
        from omegaconf import OmegaConf, open_dict, read_write

        from ..record.opening import start

        hydra = config.hydra
        mode = OmegaConf.select(hydra, "mode", default=None)  # a RunMode enum
        multirun = str(getattr(mode, "name", mode)) == "MULTIRUN"
        if multirun and ChildContext.from_environ() is not None:
            return  # `replicator run -m ...`: the launcher records one run per job
        task = config.copy()
        with read_write(task), open_dict(task):
            del task["hydra"]
        overrides = [str(o) for o in OmegaConf.to_container(hydra.overrides.task) or ()]
        name = ",".join(overrides) if multirun and overrides else None
        global _current
        self.run = _current = start(
            task,
            experiment=self.experiment or str(hydra.job.name),
            name=name,
            store=self.store,
        )
        self.started = time.time()
        self.job_dir = Path(
            str(OmegaConf.select(hydra, "runtime.output_dir", default=None) or os.getcwd())
        )
        job = read_hydra_job(self.job_dir)
        if job is not None:  # the composed config is the run's already (start above)
            record_hydra_job(self.run.dir, job, as_config=False)

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        """Finish the job's run: completed, or failed with the job's exception."""
        from hydra.core.utils import JobStatus

        global _current
        run, self.run, _current = self.run, None, None
        if run is None:
            return
        if job_return.status == JobStatus.COMPLETED:
            value = job_return.return_value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                run.summary["hydra_return"] = value
            run.finish("completed")
        else:
            # JobReturn.return_value re-raises a failed job's exception; the field holds it
            error = getattr(job_return, "_return_value", None)
            run.finish("failed", error=f"{type(error).__name__}: {error}"[:2000])
        if ChildContext.from_environ() is None:
            # the job's TensorBoard scalars; under `replicator run` the launcher imports them
            files = find_event_files(self.job_dir, since=self.started, skip=[self.store.root])
            import_event_files(run.dir, files)
