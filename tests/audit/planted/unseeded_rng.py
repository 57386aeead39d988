"""Planted: numpy's default_rng() without a seed."""

import numpy as np

rng = np.random.default_rng()
weights = rng.normal(size=4)
for step in range(3):
    weights = weights * 0.9
    print(f"step {step} | loss {float(weights.sum())!r}")
