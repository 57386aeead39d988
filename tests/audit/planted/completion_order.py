"""Planted: results summed in completion order, tasks of random length."""

import random
import time
from concurrent.futures import ThreadPoolExecutor, as_completed


def work(i: int) -> float:
    time.sleep(random.random() * 0.004 + (8 - i) * 0.001)  # later tasks tend to end first
    return 1.0 / (i + 1)


total = 0.0
with ThreadPoolExecutor(max_workers=4) as pool:
    futures = [pool.submit(work, i) for i in range(8)]
    for future in as_completed(futures):
        total = total * 0.5 + future.result()
print(f"step 0 | total {total!r}")
