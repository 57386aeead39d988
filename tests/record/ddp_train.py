"""A small DDP training script for tests/record/test_distributed.py (run under torchrun, gloo).

Every rank calls replicator.start(), logs, checkpoints and sets a summary value, as DDP scripts
do. With ``DDP_FAIL_RANK=r`` rank r raises at once and no rank trains (nor imports torch, which
keeps that launch short).
"""

import os

import replicator

fail_rank = int(os.environ.get("DDP_FAIL_RANK", "-1"))
rank = int(os.environ["RANK"])
if fail_rank >= 0:
    with replicator.start({"lr": 0.1, "steps": 4}, experiment="ddp") as run:
        if rank == fail_rank:
            raise RuntimeError(f"boom on rank {rank}")
    raise SystemExit(0)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

dist.init_process_group("gloo")
with replicator.start({"lr": 0.1, "steps": 4}, experiment="ddp") as run:
    weight = torch.zeros(2)
    for step in range(4):
        grad = torch.full((2,), float(rank + step))
        dist.all_reduce(grad)  # the ranks train one model together
        weight -= 0.1 * grad / dist.get_world_size()
        run.log({"loss": float(weight.sum()), "me": rank}, step=step)
    saved = run.checkpoint({"w": weight}, step=3)
    run.summary["final_rank"] = rank
    print(f"rank {rank} run {run.id} world {run.world_size} saved {saved is not None}")
    dist.barrier()
dist.destroy_process_group()
