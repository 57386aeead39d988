"""Planted: a DataLoader with workers, random augmentation, no worker_init_fn or generator."""

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class Noisy(Dataset):
    def __init__(self) -> None:
        self.rng = None

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.rng is None:  # one generator per worker, never seeded
            self.rng = np.random.default_rng()
        return torch.tensor(i + self.rng.normal(), dtype=torch.float64)


if __name__ == "__main__":
    loader = DataLoader(Noisy(), batch_size=4, num_workers=2)
    for step, batch in enumerate(loader):
        print(f"step {step} | loss {float(batch.sum())!r}")
