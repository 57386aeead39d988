"""Benchmark of issue 13, item 2: reading the metrics of an MLflow store, replicator vs MLflow.

The store is written once with MLflow's own client (``MlflowClient.log_batch``, 4 keys x
``--steps`` steps; cached under ``/tmp/replicator-bench-mlflow/``, the write is not timed), in
MLflow 3's default backend (``sqlite:///mlflow.db``) and in a file store (``./mlruns``). Library
against library, in one process, the sides alternated, median of ``--repeat`` rounds each:

- replicator: ``replicator.store.mlflow_files.read_mlflow_database`` /
  ``read_mlflow_run_dir`` (what ``replicator run`` and ``replicator import mlflow`` read);
- MLflow: ``MlflowClient(tracking_uri).get_metric_history(run_id, key)`` for every key, the
  documented way to read a run's metric history (a fresh client per round, as a new process has).

Each side must return all values; the script checks the counts and the last value. Both sides'
modules are imported before the timed rounds. W&B has no peer here: wandb 0.31 has no Python
reader of its run files (``wandb.Api().run(...).history()`` needs the W&B server).

Run: ``PYTHONPATH=src .venv-bench/bin/python benchmarks/bench_mlflow_import.py [--repeat 5]
[--steps 25000]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

KEYS = ("loss/train", "loss/val", "lr", "grad_norm")
CACHE = Path(tempfile.gettempdir()) / "replicator-bench-mlflow"


def write_store(uri: str, steps: int) -> str:
    """Log ``steps`` x 4 values into ``uri`` with MLflow's client; return the run id."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("bench"))
    batch: list[Metric] = []
    now = int(time.time() * 1000)
    for step in range(steps):
        for i, key in enumerate(KEYS):
            batch.append(Metric(key, (i + 1) / (step + 1), now + step, step))
            if len(batch) == 1000:  # MLflow's limit per log_batch
                client.log_batch(run.info.run_id, metrics=batch)
                batch = []
    if batch:
        client.log_batch(run.info.run_id, metrics=batch)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def store(kind: str, steps: int) -> tuple[str, str, Path]:
    """The cached store of ``kind`` (sqlite or file): its tracking URI, run id and path."""
    folder = CACHE / f"{kind}-{steps}"
    path = folder / ("mlflow.db" if kind == "sqlite" else "mlruns")
    uri = f"sqlite:///{path}" if kind == "sqlite" else path.as_uri()
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print(f"writing {steps * len(KEYS):,} values into an MLflow {kind} store (once)...")
        t = time.perf_counter()
        run_id = write_store(uri, steps)
        (folder / "done").write_text(run_id)
        print(f"  written in {time.perf_counter() - t:.0f} s")
    return uri, (folder / "done").read_text(), path


def replicator_side(kind: str, path: Path, run_id: str) -> tuple[int, float]:
    from replicator.store.mlflow_files import read_mlflow_database, read_mlflow_run_dir

    if kind == "sqlite":
        (run,) = read_mlflow_database(path)
    else:
        (run,) = [read_mlflow_run_dir(p) for p in path.glob(f"*/{run_id}")]
    assert run.problem is None, run.problem
    last = [v for _, _, k, v in run.scalars if k == KEYS[-1]][-1]
    return len(run.scalars), last


def mlflow_side(uri: str, run_id: str) -> tuple[int, float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    count, last = 0, 0.0
    for key in KEYS:
        history = client.get_metric_history(run_id, key)
        count += len(history)
        if key == KEYS[-1]:
            last = max(history, key=lambda m: m.step).value
    return count, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=25_000)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow  # imported before the timed rounds

    import replicator.store.mlflow_files  # noqa: F401

    expected = args.steps * len(KEYS)
    print(
        f"python {platform.python_version()}, mlflow {mlflow.__version__}, load {os.getloadavg()[0]:.1f}"
    )
    for kind in ("sqlite", "file"):
        uri, run_id, path = store(kind, args.steps)
        sides: dict[str, Callable[[], tuple[int, float]]] = {
            "replicator": lambda k=kind, p=path, r=run_id: replicator_side(k, p, r),
            "MlflowClient.get_metric_history": lambda u=uri, r=run_id: mlflow_side(u, r),
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.repeat):
            for name, side in sides.items():
                t = time.perf_counter()
                count, last = side()
                times[name].append(time.perf_counter() - t)
                assert count == expected, (name, count, expected)
                assert abs(last - len(KEYS) / args.steps) < 1e-9, (name, last)
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        ours = medians["replicator"]
        print(f"{kind} store, {expected:,} values, median of {args.repeat}:")
        for name, median in medians.items():
            print(f"  {name:34s} {median:7.3f} s  ({median / ours:.1f}x replicator's time)")


if __name__ == "__main__":
    main()
