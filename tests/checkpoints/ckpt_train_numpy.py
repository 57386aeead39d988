"""A numpy-only training loop that resumes exactly (no torch imported).

Minibatches come from a registered numpy Generator that spawns a child stream per epoch (so the
SeedSequence's spawn counter must survive the resume); label noise from numpy's global RNG and
Python's ``random``. Touches MARK_DIR/<step> after each checkpoint and writes FINAL (.npy).
"""

import os
import random
import sys
import time
from pathlib import Path

import numpy as np

import replicator
from replicator.checkpoints.rng import register_rng

STEPS = int(os.environ.get("TRAIN_STEPS", "40"))
MARKS = Path(os.environ["MARK_DIR"])
FINAL = Path(os.environ["FINAL"])
DELAY = float(os.environ.get("STEP_DELAY", "0"))

(MARKS / "pid").write_text(str(os.getpid()))
with replicator.start(checkpoints={"monitor": "loss", "mode": "min", "keep_best": 2}) as run:
    data_rng = register_rng(np.random.default_rng(run.seed), name="data")
    x = np.linspace(-1, 1, 64).reshape(32, 2)
    y = x @ np.array([0.5, -2.0]) + 0.3
    # Registered before loading: the load restores its state and SeedSequence.
    epoch_rng = register_rng(np.random.default_rng(0), name="epoch")
    w, b, step = np.zeros(2), 0.0, 0
    if run.resumed:
        ckpt = run.load_checkpoint()
        if ckpt is not None:
            w, b, step = ckpt.state["w"], ckpt.state["b"], ckpt.step
    while step < STEPS:
        if step % 8 == 0:
            (epoch_rng,) = data_rng.spawn(1)  # a fresh stream per "epoch"
            register_rng(epoch_rng, name="epoch")
        idx = epoch_rng.choice(32, size=4, replace=False)
        noise = np.random.normal(0, 0.05, size=4) + random.gauss(0, 0.01)
        pred = x[idx] @ w + b
        err = pred - (y[idx] + noise)
        w = w - 0.1 * (x[idx].T @ err) / 4
        b = b - 0.1 * float(err.mean())
        step += 1
        loss = float((err**2).mean())
        run.log({"loss": loss}, step=step)
        state = {"w": w, "b": b}
        run.checkpoint(state, step=step, metrics={"loss": loss})
        (MARKS / str(step)).touch()
        time.sleep(DELAY)
    assert "torch" not in sys.modules, "the numpy loop must not import torch"
    np.save(FINAL, np.concatenate([w, [b]]))
