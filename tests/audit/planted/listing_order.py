"""Planted: files read in the filesystem's listing order feed an order-dependent sum."""

import os
from pathlib import Path

data = Path(__file__).with_name("shards")
total = 0.0
for name in os.listdir(data):
    total = total * 0.5 + float((data / name).read_text())
print(f"step 0 | total {total!r}")
