"""Planted: a training loop bounded by elapsed time, not by a number of steps."""

import time

start = time.time()
steps, loss = 0, 1.0
while time.time() - start < 0.15:
    loss += 1e-6  # each step moves the result: how many steps ran is in the number
    steps += 1
print(f"step 0 | loss {loss!r} | steps {steps}")
