"""GPU sources: index_add_ with repeated indices (atomic adds on CUDA) under cuDNN benchmark,
and histc, which has no deterministic CUDA kernel at all."""

import torch

torch.backends.cudnn.benchmark = True
torch.manual_seed(0)
values = torch.randn(200_000, device="cuda", dtype=torch.float32) * 1000
index = torch.randint(0, 8, (200_000,), device="cuda")
out = torch.zeros(8, device="cuda")
out.index_add_(0, index, values)
hist = torch.histc(values, bins=4)
for step in range(3):
    print(f"step {step} | total {float(out[step])!r}")
