"""A small torch training that resumes exactly: dropout, a shuffling 2-worker DataLoader, Adam.

The same code serves a fresh start and a resume (``run.resumed``). Mid-epoch resume: the
loader's generator state at the start of the epoch is part of the checkpoint, and the batches
already trained on are skipped. Touches MARK_DIR/<step> after each checkpoint so that a test can
kill it at a known point, and writes the final parameters to FINAL (safetensors).
"""

import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset

import replicator
from replicator.checkpoints.rng import register_rng

STEPS = int(os.environ.get("TRAIN_STEPS", "30"))
MARKS = Path(os.environ["MARK_DIR"])
FINAL = Path(os.environ["FINAL"])
DELAY = float(os.environ.get("STEP_DELAY", "0"))


class Noisy(Dataset):
    """Augmentation noise comes from the worker's RNGs (seeded by replicator.seed_worker)."""

    def __len__(self) -> int:
        return 22  # 6 batches of 4, the last one short

    def __getitem__(self, i: int):
        x = torch.linspace(-1.0, 1.0, 8) * (i + 1) / 22
        x = x + 0.1 * torch.randn(8) + float(np.random.rand()) * 0.01
        return x, torch.tensor([float(i % 3)])


torch.set_num_threads(1)
(MARKS / "pid").write_text(str(os.getpid()))
# A checkpoint every 3 steps: a resume re-does the steps after the last one.
with replicator.start(checkpoints={"keep_last": 2, "every": 3}) as run:
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = register_rng(torch.Generator().manual_seed(run.seed), name="loader")
    loader = DataLoader(
        Noisy(),
        batch_size=4,
        shuffle=True,
        num_workers=2,
        worker_init_fn=replicator.seed_worker,
        generator=gen,
    )
    step, epoch, done_in_epoch, epoch_gen = 0, 0, 0, None
    if run.resumed:
        ckpt = run.load_checkpoint()
        if ckpt is not None:
            model.load_state_dict(ckpt.state["model"])
            opt.load_state_dict(ckpt.state["optim"])
            step, epoch = ckpt.step, ckpt.state["epoch"]
            done_in_epoch, epoch_gen = ckpt.state["batch"], ckpt.state["epoch_gen"]
    while step < STEPS:
        if epoch_gen is None:
            epoch_gen = gen.get_state()
        gen.set_state(epoch_gen)  # this epoch's shuffle and worker seeds
        for batch, (x, y) in enumerate(loader):
            if batch < done_in_epoch:
                continue  # trained on before the checkpoint
            step += 1
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log({"loss": loss.item()}, step=step)
            state = {
                "model": model.state_dict(),
                "optim": opt.state_dict(),
                "epoch": epoch,
                "batch": batch + 1,
                "epoch_gen": epoch_gen,
            }
            run.checkpoint(state, step=step, metrics={"loss": loss.item()})
            (MARKS / str(step)).touch()
            time.sleep(DELAY)
            if step >= STEPS:
                break
        else:
            epoch, done_in_epoch, epoch_gen = epoch + 1, 0, None
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(FINAL))
