"""Planted: iteration over a set of strings feeds a number (hash order)."""

words = {"a", "bb", "ccc", "dddd", "eeeee", "ffffff", "ggggggg", "hhhhhhhh"}
total = 0.0
for word in words:
    total = total * 0.5 + len(word)
print(f"step 0 | total {total!r}")
