"""Keras 3 on a replicator run: epoch and batch metrics, the model's facts, weight checkpoints.

``ReplicatorCallback`` is a ``keras.callbacks.Callback``::

    with replicator.start() as run:
        callback = ReplicatorCallback(run)
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=5, callbacks=[callback], initial_epoch=callback.restore(model))

- every batch's logs go to ``run.log`` as ``batch/<name>`` at the global batch number (from 1),
  every epoch's logs (``loss``, ``val_loss``, ...) as ``<name>`` at the global batch number
  when the epoch ends, with ``epoch`` (from 1);
- when training starts, ``config/keras.json`` records the model's facts (name, class, layers
  with their classes and parameter counts, trainable and total parameters, input and output
  shapes), the optimizer's config, the loss, and the Keras backend;
- after every ``save_every_n_epochs`` epoch, the weights and the optimizer's variables are
  saved through the run's :class:`~replicator.checkpoints.CheckpointManager` (with every RNG
  stream), ranked by the epoch's metrics;
- :meth:`ReplicatorCallback.restore` puts the latest checkpoint back into the model in a
  resumed run (``replicator run --resume RUN``) and returns the epoch to go on from (0 on a
  fresh start), for ``fit(initial_epoch=...)``.

Keras is an optional extra: ``pip install 'replicator[keras]'`` (with any backend: JAX, torch
or TensorFlow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._util.deps import require
from .._util.io import atomic_write_json
from ._common import numbers, plain, the_run

keras = require("keras", purpose="replicator.integrations.keras")

__all__ = ["ReplicatorCallback", "model_facts"]


def model_facts(model: Any) -> dict[str, Any]:
    """What a run records of a Keras model: its shape and size, optimizer, loss and backend."""
    import numpy as np

    def count(weights: Any) -> int:
        return int(sum(int(np.prod(w.shape)) for w in weights))

    facts: dict[str, Any] = {
        "name": model.name,
        "class": type(model).__name__,
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "layers": [
            {"name": layer.name, "class": type(layer).__name__, "parameters": count(layer.weights)}
            for layer in model.layers
        ],
        "parameters": count(model.weights),
        "trainable_parameters": count(model.trainable_weights),
    }
    for attribute in ("input_shape", "output_shape"):
        try:
            facts[attribute] = plain(getattr(model, attribute))
        except (AttributeError, ValueError):
            pass
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        facts["optimizer"] = {"class": type(optimizer).__name__, **plain(optimizer.get_config())}
    loss = getattr(model, "loss", None)
    if loss is not None:
        facts["loss"] = loss if isinstance(loss, str) else getattr(loss, "__name__", repr(loss))
    return facts


class ReplicatorCallback(keras.callbacks.Callback):  # type: ignore[name-defined]
    """Record a Keras ``fit`` into a replicator run and checkpoint its weights.

    ``run`` defaults to the run open in this process. ``log_batches`` False records epoch
    metrics only; ``save_every_n_epochs`` 0 saves no checkpoint.
    """

    def __init__(
        self, run: Any = None, *, log_batches: bool = True, save_every_n_epochs: int = 1
    ) -> None:
        super().__init__()
        self._run = run
        self.log_batches = log_batches
        self.save_every_n_epochs = save_every_n_epochs
        self._step = 0

    @property
    def run(self) -> Any:
        self._run = the_run(self._run, "ReplicatorCallback")
        return self._run

    def restore(self, model: Any) -> int:
        """In a resumed run, load the latest checkpoint into ``model`` (weights and optimizer
        state; ``model`` must be compiled) and return the epoch to continue from; 0 otherwise."""
        run = self.run
        if not run.resumed:
            return 0
        loaded = run.load_checkpoint("latest")
        if loaded is None:
            return 0
        state = dict(loaded.state)
        model.set_weights(list(state["weights"]))
        saved = list(state.get("optimizer", ()))
        optimizer = getattr(model, "optimizer", None)
        if saved and optimizer is not None:
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            for variable, value in zip(optimizer.variables, saved, strict=False):
                variable.assign(value)
        self._step = int(loaded.step)
        return int(loaded.epoch or 0)

    def on_train_begin(self, logs: Any = None) -> None:
        folder = Path(self.run.dir) / "config"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "keras.json", model_facts(self.model), fsync=False)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._step += 1
        if self.log_batches:
            values = numbers(logs)
            if values:
                self.run.log({f"batch/{k}": v for k, v in values.items()}, step=self._step)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        values = numbers(logs)
        self.run.log({**values, "epoch": epoch + 1}, step=self._step)
        n = self.save_every_n_epochs
        if n and (epoch + 1) % n == 0:
            self._save(epoch + 1, values)

    def on_train_end(self, logs: Any = None) -> None:
        self.run.flush()

    def _save(self, epoch: int, metrics: dict[str, float]) -> None:
        import numpy as np

        state: dict[str, Any] = {"weights": [np.asarray(w) for w in self.model.get_weights()]}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            state["optimizer"] = [
                np.asarray(keras.ops.convert_to_numpy(v)) for v in optimizer.variables
            ]
        self.run.checkpoint(state, step=self._step, epoch=epoch, metrics=metrics)
