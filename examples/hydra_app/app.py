"""A small Hydra app for replicator: composes a config, "trains", and logs its loss.

Recorded without changing a line (replicator reads Hydra's .hydra/ folder when the run ends):

    replicator run -- python app.py model=big optim.lr=0.1
    replicator run -- python app.py -m optim.lr=0.1,0.01     # one run per job

Or in-process, with replicator's Hydra callback (docs/integrations.md; or put it in the config):

    python app.py +hydra.callbacks.replicator._target_=replicator.integrations.hydra.ReplicatorCallback

The loss is logged to TensorBoard when torch (with tensorboard) is installed, and printed always.
"""

from __future__ import annotations

import math

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    writer = _summary_writer()
    loss = 0.0
    for step in range(cfg.steps):
        loss = cfg.model.width / 64 * math.exp(-cfg.optim.lr * step)
        print(f"step {step} | loss {loss:.4f}")
        if writer is not None:
            writer.add_scalar("loss", loss, step)
    if writer is not None:
        writer.close()
    return loss


def _summary_writer():  # type: ignore[no-untyped-def]
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter("tb")  # inside the job's output folder (Hydra changes into it)


if __name__ == "__main__":
    main()
