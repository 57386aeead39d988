"""Planted: a float32 reduction split into one chunk per thread, as OpenMP/BLAS reductions are."""

import os

import numpy as np

threads = int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))
values = np.random.default_rng(0).normal(1000.0, 1.0, size=100_003).astype(np.float32)
partials = [chunk.sum(dtype=np.float32) for chunk in np.array_split(values, threads)]
total = np.float32(0.0)
for partial in partials:
    total = np.float32(total + partial)
print(f"step 0 | total {float(total)!r}")
