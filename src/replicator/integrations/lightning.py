"""PyTorch Lightning on a replicator run: hyperparameters, metrics and exact-resume checkpoints.

``ReplicatorCallback`` attaches a Trainer to the run: it records the module's hyperparameters,
logs the trainer's metrics, and saves Lightning's full training state (weights, optimizers,
schedulers, loops, callbacks) through the run's :class:`~replicator.checkpoints.CheckpointManager`,
which adds every RNG stream (Lightning's own checkpoints hold none). ``ReplicatorCheckpointIO``
lets the Trainer read those checkpoints back (``trainer.fit(..., ckpt_path=...)``), restoring
the RNG streams, and writes ``trainer.save_checkpoint(path)`` in the same safe format::

    with replicator.start(cfg, checkpoints={"monitor": "val_acc", "keep_best": 3}) as run:
        callback = ReplicatorCallback(run)
        trainer = Trainer(callbacks=[callback], plugins=[ReplicatorCheckpointIO(run)],
                          enable_checkpointing=False)
        trainer.fit(model, datamodule=dm, ckpt_path=callback.resume_path())

``resume_path()`` is None on a fresh start and the latest checkpoint of a resumed run, so the
same script serves both.

``ReplicatorLogger`` is a Lightning *logger* (``lightning.pytorch.loggers.Logger``) for a Trainer
that needs no callback: ``Trainer(logger=ReplicatorLogger())`` records what Lightning logs
(``self.log(...)`` in the module, at the Trainer's global step) and the hyperparameters
(``self.save_hyperparameters()``) into the run open in the process, and opens one with
``replicator.start()`` (joining the run of ``replicator run``) when none is open.

Lightning is an optional extra: ``pip install 'replicator[lightning]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._util.deps import require
from .._util.io import atomic_write_json, replacing
from ..errors import UsageError

require("lightning.pytorch", purpose="replicator.integrations.lightning")
from lightning.pytorch.callbacks import Callback  # noqa: E402 (after the clear error above)
from lightning.pytorch.loggers import Logger  # noqa: E402
from lightning.pytorch.plugins.io import CheckpointIO  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402

from ._common import numbers, plain  # noqa: E402

__all__ = ["ReplicatorCallback", "ReplicatorCheckpointIO", "ReplicatorLogger"]

# Keys of Lightning's checkpoint that hold arbitrary user objects (pickled by Lightning); the
# run's config records the hyperparameters instead, and fit() does not need them to resume.
_UNSAFE_KEYS = ("hyper_parameters", "datamodule_hyper_parameters", "hparams_name")


def _the_run(run: Any) -> Any:
    if run is not None:
        return run
    from ..record.run import active_run

    active = active_run()
    if active is None:
        raise UsageError(
            "ReplicatorCallback needs a run: create it inside `with replicator.start(...) as "
            "run:` or pass ReplicatorCallback(run)."
        )
    return active


def _numbers(metrics: Any) -> dict[str, float]:
    out = {}
    for key, value in dict(metrics).items():
        if hasattr(value, "numel") and value.numel() != 1:
            continue
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


class ReplicatorCallback(Callback):
    """Record a Lightning Trainer into a replicator run and checkpoint it with RNG state.

    Saves at the end of every training epoch (after that epoch's validation, so validation
    metrics can rank checkpoints), and optionally after every validation or every
    ``every_n_train_steps`` optimizer steps. The checkpoint's metrics are the trainer's
    ``callback_metrics``, so ``start(checkpoints={"monitor": "val_acc"})`` ranks by them.

    Resuming from an epoch-end checkpoint is exact (same weights as an uninterrupted fit).
    Lightning restarts a loop stopped mid-epoch by re-creating its data iterators, which draws
    from the RNG again, so resuming from a mid-epoch checkpoint (``save_on_validation`` with
    ``val_check_interval``, or ``every_n_train_steps``) is a valid resume but not bit-exact.
    """

    def __init__(
        self,
        run: Any = None,
        *,
        save_on_train_epoch_end: bool = True,
        save_on_validation: bool = False,
        every_n_train_steps: int | None = None,
        log_metrics: bool = True,
    ) -> None:
        super().__init__()
        self._run = run
        self.save_on_validation = save_on_validation
        self.save_on_train_epoch_end = save_on_train_epoch_end
        self.every_n_train_steps = every_n_train_steps
        self.log_metrics = log_metrics

    @property
    def run(self) -> Any:
        self._run = _the_run(self._run)
        return self._run

    def resume_path(self) -> str | None:
        """The latest checkpoint's path when the run was resumed, else None (fresh start)."""
        run = self.run
        if not run.resumed:
            return None
        latest = run.checkpoints.latest
        return str(latest.path) if latest is not None else None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        hparams = {"module": _plain(dict(getattr(pl_module, "hparams", {}) or {}))}
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None:
            hparams["datamodule"] = _plain(dict(getattr(datamodule, "hparams", {}) or {}))
        folder = Path(self.run.dir) / "config"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "lightning_hparams.json", hparams, fsync=False)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.is_global_zero:
            return
        step = int(trainer.global_step)
        if self.log_metrics:
            metrics = _numbers(trainer.callback_metrics)
            if metrics:
                self.run.log(metrics, step=step)
        n = self.every_n_train_steps
        if n and step > 0 and step % n == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero and self.save_on_train_epoch_end:
            self._save(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if self.log_metrics:
            metrics = _numbers(trainer.callback_metrics)
            if metrics:
                self.run.log(metrics, step=int(trainer.global_step))
        if self.save_on_validation:
            self._save(trainer)

    def _save(self, trainer: Any) -> None:
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        for key in _UNSAFE_KEYS:
            checkpoint.pop(key, None)
        self.run.checkpoint(
            checkpoint,
            step=int(trainer.global_step),
            epoch=int(trainer.current_epoch),
            metrics=_numbers(trainer.callback_metrics),
        )


class ReplicatorCheckpointIO(CheckpointIO):
    """Lightning's checkpoint reader/writer in replicator's format (safetensors + JSON).

    Loading a file of the run's checkpoint directory goes through the manager: its hash is
    checked against the manifest and every RNG stream is restored. Other files are read with
    :func:`replicator.checkpoints.read_checkpoint` (a pickle needs ``trust_pickle=True``).
    """

    def __init__(self, run: Any = None, *, trust_pickle: bool = False) -> None:
        self._run = run
        self.trust_pickle = trust_pickle

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any = None
    ) -> None:
        from ..checkpoints.file import Snapshot

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v for k, v in checkpoint.items() if k not in _UNSAFE_KEYS}
        with replacing(target) as tmp:
            Snapshot({"state": state}, copy=False).write(tmp)

    def load_checkpoint(
        self, path: str | os.PathLike[str], map_location: Any = None, weights_only: Any = None
    ) -> dict[str, Any]:
        from ..checkpoints.manager import read_checkpoint

        target = Path(path).resolve()
        run = _the_run(self._run)
        for info in run.checkpoints.checkpoints():
            if info.path.resolve() == target:
                # Through the run: hash checked, RNG restored, later metrics superseded.
                loaded = run.load_checkpoint(info.step, map_location=map_location)
                return dict(loaded.state)
        loaded = read_checkpoint(target, trust_pickle=self.trust_pickle, map_location=map_location)
        return dict(loaded.state)

    def remove_checkpoint(self, path: str | os.PathLike[str]) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


class ReplicatorLogger(Logger):
    """A Lightning logger that records into a replicator run.

    ``log_metrics`` goes to ``run.log`` at Lightning's step (the global step); the
    hyperparameters of ``log_hyperparams`` (``save_hyperparameters()``, and a datamodule's) are
    written to ``config/lightning_hparams.json``, as :class:`ReplicatorCallback` writes them.
    ``run`` defaults to the run open in this process; when none is open, the logger opens one
    with ``replicator.start()`` on first use (under ``replicator run`` it joins the launcher's
    run) and finishes it in ``finalize`` with Lightning's status. Checkpoints stay Lightning's
    (``ModelCheckpoint``); for checkpoints with RNG state use :class:`ReplicatorCallback`.
    """

    def __init__(self, run: Any = None) -> None:
        super().__init__()
        self._run = run
        self._opened = False
        self._hparams: dict[str, Any] = {}

    @property
    def run(self) -> Any:
        if self._run is None:
            from ..record.run import active_run

            self._run = active_run()
            if self._run is None:
                from ..record.opening import start

                self._run = start()
                self._opened = True
        return self._run

    @property
    def name(self) -> str:
        """The run's experiment."""
        return str(self.run.experiment)

    @property
    def version(self) -> str:
        """The run's id."""
        return str(self.run.id)

    @property
    def save_dir(self) -> str | None:
        # None: Lightning's own checkpoints go to the Trainer's default_root_dir, never into
        # the run directory (the record)
        return None

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        values = (
            vars(params) if hasattr(params, "__dict__") and not isinstance(params, dict) else params
        )
        self._hparams.update(plain(dict(values or {})))
        folder = Path(self.run.dir) / "config"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "lightning_hparams.json", {"module": self._hparams}, fsync=False)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        values = numbers(metrics)
        if values:
            self.run.log(values, step=step)

    @rank_zero_only
    def save(self) -> None:
        self.run.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._run is None:
            return
        self._run.flush()
        if self._opened:
            # Lightning says "success", "failed" or "finished"
            self._run.finish("failed" if status == "failed" else "completed")
            self._opened = False
