"""Clean: a DataLoader with workers seeded through worker_init_fn and a seeded generator."""

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def seed_worker(worker_id: int) -> None:
    np.random.seed(torch.initial_seed() % 2**32)


class Noisy(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(i + np.random.normal(), dtype=torch.float64)


if __name__ == "__main__":
    loader = DataLoader(
        Noisy(),
        batch_size=4,
        num_workers=2,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(0),
    )
    for step, batch in enumerate(loader):
        print(f"step {step} | loss {float(batch.sum())!r}")
