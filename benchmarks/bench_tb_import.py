"""Benchmark of issue 13, item 2: reading a TensorBoard log of 1,000,000 scalars.

The log is written once with PyTorch's real ``SummaryWriter`` (4 tags x 250,000 steps; cached
under ``/tmp/replicator-bench-tb/``, the write is not timed). Library against library, in one
process, the sides alternated, median of ``--repeat`` rounds each:

- replicator: ``replicator.store.tensorboard.read_event_file`` (checksums verified), and the
  whole import into a run (``replicator.record.tensorboard.import_event_files``: read, then
  append every value to ``metrics.jsonl``), which is what ``replicator run`` adds to a run;
- TensorBoard's ``EventAccumulator`` with ``size_guidance={"scalars": 0}`` (keep all), then
  ``Scalars(tag)`` for every tag;
- ``tbparse.SummaryReader(path).scalars`` (a pandas DataFrame), when tbparse is installed.

Each side must return all 1,000,000 values; the script checks the counts and the last value.
Every side's modules are imported once before the timed rounds (the import times are printed
apart), so the rounds time the reading alone.

TensorBoard's fast mode: with TensorFlow installed, ``EventAccumulator`` (and so tbparse) reads
the records with TensorFlow's C++ record reader; without it, with TensorBoard's pure-Python stub,
which computes every CRC-32C byte by byte in Python. The script says which one it ran; only the
first is the peer in its fast mode. ``.venv-bench`` has no TensorFlow, so run it from an
environment that has (``tensorflow-cpu``, ``tensorboard``, ``tbparse``, replicator's
dependencies), with ``PYTHONPATH=src``.

Run: ``PYTHONPATH=src <python with tensorflow> benchmarks/bench_tb_import.py [--repeat 3]
[--steps 250000]`` (the event file is written with torch, once: from ``.venv-bench`` first)
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TAGS = ("loss/train", "loss/val", "lr", "grad_norm")
CACHE = Path(tempfile.gettempdir()) / "replicator-bench-tb"


def event_file(steps: int) -> Path:
    """The cached log of ``steps`` x 4 scalars, written with torch's SummaryWriter."""
    folder = CACHE / f"steps-{steps}"
    found = glob.glob(str(folder / "events.out.tfevents.*"))
    if found and (folder / "done").exists():
        return Path(found[0])
    shutil.rmtree(folder, ignore_errors=True)
    from torch.utils.tensorboard import SummaryWriter

    print(f"writing {steps * len(TAGS):,} scalars with SummaryWriter into {folder} (once)...")
    t = time.perf_counter()
    writer = SummaryWriter(str(folder), max_queue=10_000, flush_secs=600)
    for step in range(steps):
        for i, tag in enumerate(TAGS):
            writer.add_scalar(tag, (i + 1) / (step + 1), step)
    writer.close()
    (folder / "done").write_text("")
    print(f"  written in {time.perf_counter() - t:.0f} s")
    return Path(glob.glob(str(folder / "events.out.tfevents.*"))[0])


def replicator_read(path: Path) -> tuple[int, float]:
    from replicator.store.tensorboard import read_event_file

    read = read_event_file(path)
    assert read.problem is None, read.problem
    return len(read.scalars), read.scalars[-1][3]


def replicator_import(path: Path) -> tuple[int, float]:
    from replicator.record.tensorboard import import_event_files

    run_dir = Path(tempfile.mkdtemp(prefix="bench-tb-run-"))
    try:
        imported = import_event_files(run_dir, [path])
        size = os.path.getsize(run_dir / "metrics.jsonl")
        assert size > 0
        return imported.values, float(
            __import__("json").loads((run_dir / "summary.json").read_text())[TAGS[-1]]
        )
    finally:
        shutil.rmtree(run_dir)


def accumulator_read(path: Path) -> tuple[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    count, last = 0, 0.0
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        count += len(events)
        if tag == TAGS[-1]:
            last = events[-1].value
    return count, last


def tbparse_read(path: Path) -> tuple[int, float]:
    from tbparse import SummaryReader

    frame = SummaryReader(str(path)).scalars
    last = frame[frame["tag"] == TAGS[-1]]["value"].iloc[-1]
    return len(frame), float(last)


def warm_imports(tbparse_too: bool) -> str:
    """Import every side's modules once, untimed by the rounds; returns the record reader
    EventAccumulator uses and the import times."""
    times = []
    t = time.perf_counter()
    import replicator.record.tensorboard
    import replicator.store.tensorboard  # noqa: F401

    times.append(f"replicator {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    from tensorboard.backend.event_processing import event_accumulator  # noqa: F401
    from tensorboard.compat import tf

    version = tf.__version__  # resolves TensorFlow, or the stub when it is not installed
    times.append(f"tensorboard {time.perf_counter() - t:.2f} s")
    if tbparse_too:
        t = time.perf_counter()
        import tbparse  # noqa: F401

        times.append(f"tbparse {time.perf_counter() - t:.2f} s")
    reader = (
        "TensorBoard's pure-Python stub (TensorFlow not installed: NOT its fast mode)"
        if version == "stub"
        else f"TensorFlow {version}'s C++ record reader (its fast mode)"
    )
    return f"EventAccumulator reads with {reader}; imports (not timed below): {', '.join(times)}"


def alternate(fns: dict[str, Callable[[], tuple[int, float]]], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            count, last = fn()
            times[name].append(time.perf_counter() - t)
            assert count == expected_count, f"{name} read {count} values"
            assert abs(last - expected_last) < 1e-9, f"{name}: last value {last}"
    return {name: statistics.median(v) for name, v in times.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=250_000)
    args = parser.parse_args()
    path = event_file(args.steps)
    expected_count = args.steps * len(TAGS)
    expected_last = float(__import__("numpy").float32(len(TAGS) / args.steps))
    sides: dict[str, Callable[[], tuple[int, float]]] = {
        "replicator read_event_file": lambda: replicator_read(path),
        "replicator import into a run": lambda: replicator_import(path),
        "tensorboard EventAccumulator": lambda: accumulator_read(path),
    }
    if importlib.util.find_spec("tbparse") is not None:
        sides["tbparse SummaryReader"] = lambda: tbparse_read(path)
    else:
        print("tbparse is not installed: its row is left out")
    print(warm_imports("tbparse SummaryReader" in sides))
    print(
        f"{expected_count:,} scalars, {path.stat().st_size / 1e6:.1f} MB ({path.name}); "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}; "
        f"median of {args.repeat}, sides alternated"
    )
    medians = alternate(sides, args.repeat)
    base = medians["replicator read_event_file"]
    for name, seconds in medians.items():
        print(f"  {name:32s} {seconds:8.2f} s  ({seconds / base:5.1f}x replicator's reader)")
