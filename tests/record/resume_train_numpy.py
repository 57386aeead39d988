"""A numpy training loop for the resume tests: checkpoints every 4 steps, never touches run.rng.

Touches MARK_DIR/<step> after each step. Sets summary values itself: ``best_loss`` at every
step (from the summary a resumed session starts with) and ``warmup_loss`` once, at step 2.
"""

import math
import os
import time
from pathlib import Path

import numpy as np

import replicator

STEPS = int(os.environ.get("TRAIN_STEPS", "24"))
MARKS = Path(os.environ["MARK_DIR"])
DELAY = float(os.environ.get("STEP_DELAY", "0"))

(MARKS / "pid").write_text(str(os.getpid()))
with replicator.start(checkpoints={"keep_last": None}) as run:
    data = replicator.register_rng(np.random.default_rng(run.seed), name="data")
    target = np.array([1.0, -2.0, 0.5])
    w, step = np.zeros(3), 0
    if run.resumed:
        ckpt = run.load_checkpoint()
        if ckpt is not None:
            w, step = ckpt.state["w"], ckpt.step
    while step < STEPS:
        x = data.normal(size=(8, 3))
        err = x @ w - x @ target
        w = w - 0.05 * (x.T @ err) / 8
        step += 1
        loss = float((err**2).mean())
        run.log({"loss": loss}, step=step)
        run.summary["best_loss"] = min(loss, run.summary.get("best_loss", math.inf))
        if step == 2:
            run.summary["warmup_loss"] = loss
        if step % 4 == 0:
            run.checkpoint({"w": w}, step=step, metrics={"loss": loss})
        (MARKS / str(step)).touch()
        time.sleep(DELAY)
