"""Hugging Face's ``Trainer`` on a replicator run: metrics, settings and exact-resume checkpoints.

``ReplicatorCallback`` is a ``transformers.TrainerCallback``. Give it to the Trainer and let it
say where to resume from::

    with replicator.start() as run:
        callback = ReplicatorCallback(run)
        trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
        trainer.train(resume_from_checkpoint=callback.resume_path())

- every ``on_log`` (the Trainer's ``logging_steps``) goes to ``run.log`` at the Trainer's
  ``global_step``;
- the ``TrainingArguments`` (without tokens and other credentials: ``hub_token`` and every
  field named like a secret are left out) and the model's config are written to
  ``config/transformers.json`` when training starts;
- each time the Trainer saves (``save_steps``), the weights, optimizer, scheduler and Trainer
  state are saved through the run's :class:`~replicator.checkpoints.CheckpointManager`, which
  adds every RNG stream and a hash;
- in a run continued with ``replicator run --resume RUN`` (or ``start(resume=...)``),
  :meth:`ReplicatorCallback.resume_path` loads the latest valid checkpoint, restores the RNG
  streams and writes it out as a Trainer checkpoint folder, whose path the Trainer resumes from
  (weights, optimizer, scheduler, RNG state, the step and the batches to skip).

Transformers is an optional extra: ``pip install 'replicator[transformers]'``.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .._util.deps import require
from .._util.io import atomic_write_json
from ._common import numbers, plain, the_run

require("transformers", purpose="replicator.integrations.transformers")
from transformers import TrainerCallback  # noqa: E402 (after the clear error above)

__all__ = ["ReplicatorCallback"]

# TrainingArguments fields that may hold a credential: never recorded, whatever their value.
_SECRET_FIELD = re.compile(r"token|secret|password|passwd|api_?key|credential", re.IGNORECASE)


def training_config(args: Any, model: Any = None) -> dict[str, Any]:
    """What the run records of a Trainer: its arguments without credentials, the model config."""
    raw = args.to_dict() if hasattr(args, "to_dict") else dict(vars(args))
    settings = {k: plain(v) for k, v in raw.items() if not _SECRET_FIELD.search(k)}
    out: dict[str, Any] = {"training_args": settings}
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        out["model_config"] = {
            k: plain(v) for k, v in config.to_dict().items() if not _SECRET_FIELD.search(k)
        }
    if model is not None:
        out["model_class"] = type(model).__name__
        try:
            out["parameters"] = int(sum(p.numel() for p in model.parameters()))
        except (AttributeError, TypeError):
            pass
    return out


class ReplicatorCallback(TrainerCallback):
    """Record a Hugging Face Trainer into a replicator run and checkpoint it with RNG state.

    ``run`` defaults to the run open in this process (``replicator.start()``). ``checkpoint``
    False leaves checkpoints to the Trainer alone (metrics and settings are still recorded).
    """

    def __init__(self, run: Any = None, *, checkpoint: bool = True) -> None:
        self._run = run
        self.checkpoint = checkpoint
        self._last_logs: dict[str, float] = {}
        self._resume_dir: Path | None = None

    @property
    def run(self) -> Any:
        self._run = the_run(self._run, "ReplicatorCallback")
        return self._run

    # ------------------------------------------------------------------------------ resume
    def resume_path(self) -> str | None:
        """The Trainer checkpoint folder to resume from, or None on a fresh start.

        In a resumed run, the latest valid checkpoint is loaded (hash checked, RNG streams
        restored, metrics the dead process logged after it superseded) and written as a
        Trainer checkpoint folder in a temporary directory, removed when training ends.
        """
        run = self.run
        if not run.resumed:
            return None
        loaded = run.load_checkpoint("latest")
        if loaded is None:
            return None
        folder = Path(tempfile.mkdtemp(prefix="replicator-hf-resume-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        target = folder / f"checkpoint-{loaded.step}"
        _write_trainer_checkpoint(target, dict(loaded.state))
        self._resume_dir = folder
        return str(target)

    # ------------------------------------------------------------------------------ events
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = Path(self.run.dir) / "config"
        folder.mkdir(parents=True, exist_ok=True)
        config = training_config(args, kwargs.get("model"))
        atomic_write_json(folder / "transformers.json", config, fsync=False)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        values = numbers(logs)
        if values:
            self._last_logs.update(values)
            self.run.log(values, step=int(state.global_step))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.checkpoint or not state.is_world_process_zero:
            return
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        scheduler = kwargs.get("lr_scheduler")
        if model is None:
            return
        checkpoint: dict[str, Any] = {
            "model": {k: v.detach() for k, v in model.state_dict().items()},
            "trainer_state": json.dumps(dataclasses.asdict(state), sort_keys=True),
        }
        if optimizer is not None:
            checkpoint["optimizer"] = optimizer.state_dict()
        if scheduler is not None:
            checkpoint["scheduler"] = scheduler.state_dict()
        self.run.checkpoint(
            checkpoint,
            step=int(state.global_step),
            epoch=int(state.epoch or 0),
            metrics=dict(self._last_logs),
        )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._resume_dir is not None:
            shutil.rmtree(self._resume_dir, ignore_errors=True)
            self._resume_dir = None
        if state.is_world_process_zero:
            self.run.flush()


def _write_trainer_checkpoint(target: Path, state: dict[str, Any]) -> None:
    """A folder the Trainer resumes from: the files ``Trainer._save_checkpoint`` writes."""
    import random

    import numpy as np
    import torch
    from safetensors.torch import save_file

    target.mkdir(parents=True)
    weights = {k: v.detach().clone().contiguous() for k, v in state["model"].items()}
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    if "optimizer" in state:
        torch.save(state["optimizer"], target / "optimizer.pt")
    if "scheduler" in state:
        torch.save(state["scheduler"], target / "scheduler.pt")
    (target / "trainer_state.json").write_text(str(state["trainer_state"]))
    # run.load_checkpoint restored every RNG stream as it was at the save: hand them over in
    # the Trainer's format, which the Trainer restores when it reaches the saved step
    rng: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "cpu": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.random.get_rng_state()
    torch.save(rng, target / "rng_state.pth")
