"""Planted: a seed taken from the clock."""

import random
import time

rng = random.Random(time.time_ns())
for step in range(3):
    print(f"step {step} | loss {rng.random()!r}")
