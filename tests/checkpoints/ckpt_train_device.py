"""A small torch training on TRAIN_DEVICE (cpu or cuda) that resumes exactly.

Dropout draws from the device's generator (CUDA's on a GPU), a shuffling DataLoader draws from a
registered generator, Adam keeps its state on the device, and deterministic mode is on (cuBLAS
workspace, deterministic algorithms). The same code serves a fresh start and a resume
(``run.resumed``); the loader's generator state at the start of the epoch is part of the
checkpoint and the batches already trained on are skipped. Touches MARK_DIR/<step> after each
checkpoint so that a test can kill it at a known point, writes the device the parameters live
on to MARK_DIR/device, and the final parameters to FINAL (safetensors, on the CPU).
"""

import os
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, TensorDataset

import replicator
from replicator.checkpoints.rng import register_rng

STEPS = int(os.environ.get("TRAIN_STEPS", "24"))
MARKS = Path(os.environ["MARK_DIR"])
FINAL = Path(os.environ["FINAL"])
DELAY = float(os.environ.get("STEP_DELAY", "0"))
DEVICE = torch.device(os.environ.get("TRAIN_DEVICE", "cpu"))

torch.set_num_threads(1)
(MARKS / "pid").write_text(str(os.getpid()))
with replicator.start(deterministic=True, checkpoints={"keep_last": 2, "every": 3}) as run:
    data = torch.Generator().manual_seed(0)  # the data set is fixed; the run's seed shuffles it
    xs = torch.randn(26, 8, generator=data)
    ys = (xs.sum(dim=1, keepdim=True) > 0).float()
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(32, 1)
    ).to(DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = register_rng(torch.Generator().manual_seed(run.seed), name="loader")
    loader = DataLoader(TensorDataset(xs, ys), batch_size=4, shuffle=True, generator=gen)
    step, epoch, done_in_epoch, epoch_gen = 0, 0, 0, None
    if run.resumed:
        ckpt = run.load_checkpoint()
        if ckpt is not None:
            model.load_state_dict(ckpt.state["model"])
            opt.load_state_dict(ckpt.state["optim"])
            step, epoch = ckpt.step, ckpt.state["epoch"]
            done_in_epoch, epoch_gen = ckpt.state["batch"], ckpt.state["epoch_gen"]
    (MARKS / "device").write_text(str(next(model.parameters()).device))
    while step < STEPS:
        if epoch_gen is None:
            epoch_gen = gen.get_state()
        gen.set_state(epoch_gen)  # this epoch's shuffle
        for batch, (x, y) in enumerate(loader):
            if batch < done_in_epoch:
                continue  # trained on before the checkpoint
            step += 1
            x, y = x.to(DEVICE), y.to(DEVICE)
            x = x + 0.05 * torch.randn(x.shape, device=DEVICE)  # noise from the device's RNG
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
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
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(FINAL))
