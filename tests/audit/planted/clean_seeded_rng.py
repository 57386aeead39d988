"""Clean: a generator seeded with a fixed seed."""

import numpy as np

rng = np.random.default_rng(1234)
weights = rng.normal(size=4)
for step in range(3):
    weights = weights * 0.9
    print(f"step {step} | loss {float(weights.sum())!r}")
