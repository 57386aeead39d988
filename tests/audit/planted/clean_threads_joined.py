"""Clean: threads of random length, results taken in submission order."""

import random
import time
from concurrent.futures import ThreadPoolExecutor


def work(i: int) -> float:
    time.sleep(random.random() * 0.004)
    return 1.0 / (i + 1)


total = 0.0
with ThreadPoolExecutor(max_workers=4) as pool:
    futures = [pool.submit(work, i) for i in range(8)]
    for future in futures:
        total = total * 0.5 + future.result()
print(f"step 0 | total {total!r}")
