"""Checkpoint save throughput and the training loop's blocking time, side by side.

A ~500 MB state (model weights plus Adam's two moments, float32) is written to the same disk by:

* raw write: the same tensor bytes written to one file, then fsync (the disk's limit);
* torch.save: the state dict, then fsync (torch.save itself does not fsync);
* replicator sync: CheckpointManager.save (safetensors + BLAKE3 hash + RNG state + manifest,
  temp file, fsync, rename, directory fsync);
* a training loop (simulated steps that update the weights in place) saving every K steps, with
  no saves, synchronous saves and asynchronous saves: the total wall time, first save included,
  the asynchronous loop ending with ``wait()`` (so the last write is paid for too).

Each method runs ``--repeats`` times in rotation; the median is reported with the ratio to the
raw write. Loading is timed too (replicator re-hashes the file before parsing it).

    .venv/bin/python benchmarks/bench_checkpoint.py [--mb 500] [--repeats 3] [--steps 12] [--every 4] [--matmuls 40] [--only save|loop]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def make_state(mb: int):
    import torch

    torch.manual_seed(0)
    # 24 layers of weights + Adam's exp_avg and exp_avg_sq: three equal parts.
    n_layers = 24
    per = mb * 2**20 // (3 * n_layers * 4)
    model = {f"layer{i}.weight": torch.randn(per) for i in range(n_layers)}
    optim = {
        "state": {
            i: {
                "step": torch.tensor(100.0),
                "exp_avg": torch.randn(per),
                "exp_avg_sq": torch.rand(per),
            }
            for i in range(n_layers)
        },
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": list(range(n_layers))}],
    }
    return {"model": model, "optim": optim, "step": 100}


def tensors_of(state) -> list:
    out = list(state["model"].values())
    for s in state["optim"]["state"].values():
        out += [s["step"], s["exp_avg"], s["exp_avg_sq"]]
    return out


def raw_write(state, directory: Path) -> float:
    path = directory / "raw.bin"
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for t in tensors_of(state):
            f.write(memoryview(t.numpy()).cast("B"))
        f.flush()
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - t0
    path.unlink()
    return elapsed


def torch_save(state, directory: Path) -> float:
    import torch

    path = directory / "state.pt"
    t0 = time.perf_counter()
    torch.save(state, path)
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - t0
    path.unlink()
    return elapsed


def replicator_sync(state, directory: Path) -> float:
    from replicator.checkpoints import CheckpointManager

    target = directory / "sync"
    manager = CheckpointManager(target)
    t0 = time.perf_counter()
    manager.save(state, step=100)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(target)
    return elapsed


def train_step(state, work, matmuls: int) -> None:
    """One simulated optimizer step: some compute, then every weight updated in place.

    The in-place update is what makes an asynchronous save hard: the saved bytes must be those
    of the step that asked for the save, not of a later one.
    """
    import torch

    for _ in range(matmuls):
        work = torch.tanh(work @ work)
    for w in state["model"].values():
        w.mul_(0.9999)


def training_loop(
    state, directory: Path, mode: str, steps: int, every: int, matmuls: int
) -> tuple[float, float]:
    """(wall time of ``steps`` training steps saving every ``every`` steps, time blocked in save).

    ``mode`` is "none" (no saves: the training alone), "sync" or "async". Saves happen at steps
    ``every``, ``2 * every``, ... (the first save included, with its buffer allocation); the
    asynchronous loop ends with ``wait()``, so its time includes the last write to disk.
    """
    import torch

    from replicator.checkpoints import CheckpointManager

    target = directory / f"loop-{mode}"
    manager = None if mode == "none" else CheckpointManager(target, async_save=mode == "async")
    work = torch.rand(384, 384) / 384
    blocked = 0.0
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        train_step(state, work, matmuls)
        if manager is not None and step % every == 0:
            b0 = time.perf_counter()
            manager.save(state, step=step)
            blocked += time.perf_counter() - b0
    if manager is not None:
        manager.wait()
    elapsed = time.perf_counter() - t0
    shutil.rmtree(target, ignore_errors=True)
    return elapsed, blocked


def loads(state, directory: Path) -> tuple[float, float]:
    import torch

    from replicator.checkpoints import CheckpointManager

    manager = CheckpointManager(directory / "load")
    manager.save(state, step=1)
    torch.save(state, directory / "load.pt")
    t0 = time.perf_counter()
    manager.load(restore_rng=False)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch.load(directory / "load.pt", weights_only=True)
    theirs = time.perf_counter() - t0
    shutil.rmtree(directory / "load")
    (directory / "load.pt").unlink()
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="state size in MB (default 500)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12, help="training steps per loop")
    parser.add_argument("--every", type=int, default=4, help="save every N steps")
    parser.add_argument(
        "--matmuls",
        type=int,
        default=40,
        help="384x384 matrix products per simulated step (compute between saves)",
    )
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir in .)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a shared, oversubscribed machine the "
        "parallel copy of an asynchronous save spins and is several times slower)",
    )
    parser.add_argument(
        "--only",
        choices=["save", "loop"],
        default=None,
        help="run only the save throughput (with the load) or only the training loop",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    state = make_state(args.mb)
    size = sum(t.numel() * t.element_size() for t in tensors_of(state))
    directory = Path(tempfile.mkdtemp(prefix="bench-ckpt-", dir=args.dir or "."))
    times: dict[str, list[float]] = {k: [] for k in ("raw", "torch", "sync")}
    loop: dict[str, list[tuple[float, float]]] = {"none": [], "sync": [], "async": []}
    order = random.Random(0)
    try:
        if args.only in (None, "save"):
            methods = {"raw": raw_write, "torch": torch_save, "sync": replicator_sync}
            for _ in range(args.repeats):
                names = list(methods)
                order.shuffle(names)  # no method always runs right after another
                for name in names:
                    times[name].append(methods[name](state, directory))
            ours_load, torch_load = loads(state, directory)
        if args.only in (None, "loop"):
            for _ in range(args.repeats):
                modes = list(loop)
                order.shuffle(modes)
                for mode in modes:
                    loop[mode].append(
                        training_loop(state, directory, mode, args.steps, args.every, args.matmuls)
                    )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(
        f"state: {size / 1e6:.0f} MB in {len(tensors_of(state))} tensors; "
        f"median of {args.repeats} runs in shuffled order; every write ends with fsync; "
        f"torch threads: {args.threads}\n"
    )
    if args.only in (None, "save"):
        print_saves(times, size)
        print(
            f"load: replicator (hash check + parse) {ours_load:.3f} s, "
            f"torch.load(weights_only=True) {torch_load:.3f} s"
        )
    if args.only in (None, "loop"):
        print_loop(loop, args.steps, args.every, args.repeats)


def print_saves(times: dict[str, list[float]], size: int) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    raw = med["raw"]
    print(f"{'method':<40}{'seconds':>9}{'GB/s':>8}{'x raw':>8}")
    rows = [
        ("raw write of the same bytes", "raw"),
        ("torch.save", "torch"),
        ("replicator save (sync)", "sync"),
    ]
    for label, key in rows:
        print(f"{label:<40}{med[key]:>9.3f}{size / med[key] / 1e9:>8.2f}{med[key] / raw:>8.2f}")


def print_loop(
    loop: dict[str, list[tuple[float, float]]], steps: int, every: int, repeats: int
) -> None:
    wall = {m: statistics.median(t for t, _ in v) for m, v in loop.items()}
    held = {m: statistics.median(b for _, b in v) for m, v in loop.items()}
    saves = steps // every
    print(
        f"\ntraining loop: {steps} steps, a save every {every} ({saves} saves, the first "
        f"included), median of {repeats} in shuffled order; async ends with wait()"
    )
    print(f"{'loop':<40}{'wall s':>9}{'in save()':>11}{'+ over none':>13}")
    for mode, label in (
        ("none", "no checkpoints (training alone)"),
        ("sync", "replicator save (sync)"),
        ("async", "replicator save (async)"),
    ):
        extra = wall[mode] - wall["none"]
        print(f"{label:<40}{wall[mode]:>9.3f}{held[mode]:>11.3f}{extra:>13.3f}")
    cost_sync, cost_async = wall["sync"] - wall["none"], wall["async"] - wall["none"]
    print(
        f"\nwall time: async {wall['async']:.2f} s vs sync {wall['sync']:.2f} s "
        f"({wall['sync'] / wall['async']:.2f}x); cost of checkpointing over training alone: "
        f"async {cost_async:.2f} s vs sync {cost_sync:.2f} s"
        + (f" (sync/async {cost_sync / cost_async:.1f}x)" if cost_async > 0 else "")
    )


if __name__ == "__main__":
    main()
