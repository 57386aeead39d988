"""An op torch's deterministic mode reports (put_ without accumulate), on the device given."""

import sys

import torch

device = sys.argv[1] if len(sys.argv) > 1 else "cpu"
x = torch.zeros(4, device=device)
x.put_(torch.tensor([1, 1], device=device), torch.tensor([1.0, 2.0], device=device))
print(f"step 0 | total {float(x.sum())!r}")
