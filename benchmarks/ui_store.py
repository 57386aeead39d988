"""Generated stores for the UI benchmarks (``bench_ui_server.py``, the browser benchmark).

:func:`make_store` writes N run directories in the store's format quickly: ``run.json``,
``summary.json`` and ``status.jsonl`` as ``replicator run`` writes them (schema_version 1), with
the same configs and metrics as ``bench_stats.make_runs`` (5 models x 7 learning rates, one seed
per run), so that MLflow's store built by ``bench_stats.py`` holds the same runs.
:func:`write_metrics` gives one run a metrics.jsonl of many points in the writer's line format.

Run ``python benchmarks/ui_store.py DIR --runs 10000 [--points 1000000]`` to make one by hand.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

MODELS = ("mlp", "linear", "cnn", "rnn", "tf")
T0 = 1764000000.0


def run_id(i: int) -> str:
    """A run id in the store's format (``YYYYMMDD-HHMMSS-xxxx``), sortable by ``i``."""
    return f"20261126-{i // 3600 % 100:02d}{i // 60 % 60:02d}{i % 60:02d}-{i // 360000:01x}{i % 4096:03x}"


def make_store(
    root: str | os.PathLike[str],
    n: int,
    *,
    experiment: str = "bench",
    failed_every: int = 0,
) -> Path:
    """A store at ``root`` with ``n`` completed runs (every ``failed_every``-th failed, when > 0).

    Returns the store directory. Existing run directories of the same ids are overwritten."""
    store = Path(root)
    runs = store / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rid = run_id(i)
        d = runs / rid
        d.mkdir(exist_ok=True)
        failed = failed_every > 0 and i % failed_every == failed_every - 1
        status = "failed" if failed else "completed"
        config = {
            "model": MODELS[i % 5],
            "optim": {"lr": 0.1 / (1 + i % 7), "momentum": 0.9},
            "train": {"steps": 100, "batch": 32},
            "seed": i,
        }
        meta = {
            "schema_version": 1,
            "id": rid,
            "experiment": experiment,
            "name": None,
            "status": status,
            "created": T0 + i,
            "started": T0 + i,
            "ended": T0 + i + 30,
            "exit_code": 1 if failed else 0,
            "seed": i,
            "command": ["python", "train.py"],
            "config": config,
        }
        (d / "run.json").write_text(json.dumps(meta, indent=2))
        (d / "summary.json").write_text(
            json.dumps({"test_acc": 0.5 + (i % 97) / 200, "loss": 1.0 / (1 + i % 13)})
        )
        (d / "status.jsonl").write_text(
            json.dumps({"status": "running", "time": T0 + i})
            + "\n"
            + json.dumps({"status": status, "time": T0 + i + 30})
            + "\n"
        )
    return store


def write_metrics(
    run_dir: str | os.PathLike[str], points: int, *, keys: tuple[str, ...] = ("loss",)
) -> Path:
    """``points`` lines per key in ``run_dir/metrics.jsonl``, in the writer's line format: a noisy
    decaying curve with one spike (the extreme a downsampled chart must keep)."""
    path = Path(run_dir) / "metrics.jsonl"
    spike = points * 2 // 3
    with open(path, "w", encoding="utf-8") as f:
        chunk = []
        for step in range(points):
            value = 1.0 / (1 + step / 1000) + 0.05 * math.sin(step * 0.37)
            if step == spike:
                value = 25.0
            stamp = T0 + step * 0.001
            for key in keys:
                chunk.append(
                    f'{{"step": {step}, "time": {stamp:.3f}, "key": "{key}", "value": {value!r}}}\n'
                )
            if len(chunk) >= 100_000:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=0, help="metric points in the first run")
    args = parser.parse_args()
    store = make_store(args.store, args.runs)
    if args.points:
        write_metrics(store / "runs" / run_id(0), args.points)
    print(store)


if __name__ == "__main__":
    main()
