"""Benchmarks of issue 5, each side by side with its peer in the same run:

1. IQM with 95% stratified bootstrap CIs, 5 methods x (10 runs, 26 tasks), 50,000 resamples:
   ``replicator.stats.aggregate`` versus rliable's ``get_interval_estimates``; the CI endpoints are
   compared in units of their Monte Carlo standard error.
2. Learning-curve bands, 5 methods x 10 seeds x 200 steps, drawn and rendered to PNG:
   ``replicator.report.plots.plot_learning_curves`` versus seaborn's ``lineplot``, in two
   pairings that each do the same work: bootstrap against bootstrap (``band="bootstrap"``
   against ``errorbar=("ci", 95)``, 1,000 resamples each) and formula against formula
   (``band="ci"``, a t-interval, against ``errorbar=("se", 1.96)``).
3. ``replicator.load_runs`` over 10,000 run directories versus MLflow ``search_runs`` over the
   same runs in a local SQLite store (MLflow runs in its own venv, ``--mlflow-python``; its store is
   built once and cached, the build is not timed).

Every pairing alternates the two sides and reports the median of ``--repeat`` runs of each.

Run: ``.venv-bench/bin/python benchmarks/bench_stats.py [--quick] [--repeat 3] [--reps 50000]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def timed(fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    """(median seconds over ``repeat`` calls, the last result)."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def alternate(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function over ``repeat`` rounds, the functions taking turns
    (so that a change in the machine's load hits every side alike)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}


def bench_iqm(reps: int, methods: int, repeat: int) -> None:
    from rliable import library as rly
    from rliable import metrics

    from replicator.stats import aggregate

    rng = np.random.default_rng(0)
    scores = {f"algo{i}": rng.beta(2 + i, 3, size=(10, 26)) for i in range(methods)}
    ours = aggregate(scores, aggregates=("iqm",), reps=reps, seed=0)
    np.random.seed(0)
    _, theirs = rly.get_interval_estimates(scores, metrics.aggregate_iqm, reps=reps)
    med = alternate(
        {
            "replicator": lambda: aggregate(scores, aggregates=("iqm",), reps=reps, seed=0),
            "rliable": lambda: rly.get_interval_estimates(scores, metrics.aggregate_iqm, reps=reps),
        },
        repeat,
    )
    ours_t, theirs_t = med["replicator"], med["rliable"]
    # Monte Carlo SE of our endpoints from 10 seeds; rliable's is the same estimator's, so the
    # SE of a difference is about sqrt(2) times it.
    runs = np.array(
        [
            [
                [e.low, e.high]
                for e in (
                    aggregate(scores, aggregates=("iqm",), reps=reps, seed=s).estimates[k]["iqm"]
                    for k in scores
                )
            ]
            for s in range(1, 11)
        ]
    )
    se = runs.std(axis=0, ddof=1) * np.sqrt(2)
    print(f"\n## IQM CIs: {methods} methods x (10 runs, 26 tasks), {reps:,} resamples")
    print("| method | replicator CI | rliable CI | max abs diff | max abs z |")
    print("|---|---|---|---:|---:|")
    for i, k in enumerate(scores):
        e = ours.estimates[k]["iqm"]
        lo, hi = np.ravel(theirs[k])
        diff = np.abs(np.array([e.low - lo, e.high - hi]))
        z = diff / se[i]
        print(
            f"| {k} | [{e.low:.4f}, {e.high:.4f}] | [{lo:.4f}, {hi:.4f}] | {diff.max():.5f} | {z.max():.2f} |"
        )
    print(
        f"\nmedian of {repeat}, alternated: replicator {ours_t:.2f} s, rliable {theirs_t:.2f} s: "
        f"{theirs_t / ours_t:.0f}x faster"
    )


def bench_bands(methods: int, seeds: int, steps: int, repeat: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    import seaborn as sns
    from matplotlib.figure import Figure

    from replicator.report.plots import figure_bytes, plot_learning_curves

    rng = np.random.default_rng(0)
    rows = []
    for m in range(methods):
        for s in range(seeds):
            curve = np.exp(-np.arange(steps) / (40 + 10 * m)) + rng.normal(0, 0.05, steps)
            rows.append(
                pd.DataFrame(
                    {
                        "run": f"m{m}s{s}",
                        "step": np.arange(steps),
                        "key": "loss",
                        "value": curve,
                        "method": f"m{m}",
                    }
                )
            )
    tidy = pd.concat(rows, ignore_index=True)
    runs = (
        tidy[["run", "method"]]
        .drop_duplicates()
        .rename(columns={"run": "id", "method": "config.method"})
    )

    def seaborn_plot(errorbar: tuple[str, float]) -> bytes:
        fig = Figure(figsize=(6.4, 4.0))
        ax = fig.add_subplot()
        sns.lineplot(data=tidy, x="step", y="value", hue="method", errorbar=errorbar, ax=ax, seed=0)
        return figure_bytes(fig)

    def ours(band: str) -> bytes:
        return figure_bytes(
            plot_learning_curves(tidy, runs, key="loss", by="method", band=band, reps=1000)
        )

    # Two pairings, each doing the same work on both sides: a bootstrap of 1,000 resamples,
    # and a formula interval (replicator's per-step t-interval; seaborn's mean +- 1.96 SE).
    med = alternate(
        {
            "seaborn boot": lambda: seaborn_plot(("ci", 95)),
            "replicator boot": lambda: ours("bootstrap"),
            "seaborn formula": lambda: seaborn_plot(("se", 1.96)),
            "replicator formula": lambda: ours("ci"),
        },
        repeat,
    )
    print(
        f"\n## Learning-curve bands: {methods} methods x {seeds} seeds x {steps} steps, drawn to "
        f"PNG (median of {repeat}, alternated)"
    )
    print("| pairing | replicator (s) | seaborn (s) | ratio |")
    print("|---|---:|---:|---:|")
    for label, ours_key, theirs_key, ours_how, theirs_how in (
        ("bootstrap, 1,000 resamples", "replicator boot", "seaborn boot",
         "band='bootstrap'", "errorbar=('ci', 95)"),
        ("formula", "replicator formula", "seaborn formula",
         "band='ci' (t-interval, default)", "errorbar=('se', 1.96)"),
    ):  # fmt: skip
        print(
            f"| {label}: {ours_how} vs {theirs_how} | {med[ours_key]:.2f} | "
            f"{med[theirs_key]:.2f} | {med[theirs_key] / med[ours_key]:.1f}x |"
        )


MLFLOW_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from mlflow.tracking import MlflowClient
    from mlflow.entities import Metric, Param
    root, n = sys.argv[1], int(sys.argv[2])
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("bench")
    marker = os.path.join(root, f"built-{n}")
    if not os.path.exists(marker):
        eid = exp.experiment_id if exp else client.create_experiment("bench", artifact_location=root + "/art")
        for i in range(n):
            r = client.create_run(eid)
            client.log_batch(r.info.run_id, params=[Param("model", ["mlp","linear","cnn","rnn","tf"][i % 5]),
                Param("optim.lr", str(0.1 / (1 + i % 7))), Param("optim.momentum", "0.9"),
                Param("train.steps", "100"), Param("train.batch", "32"), Param("seed", str(i))],
                metrics=[Metric("test_acc", 0.5 + (i % 97) / 200, 0, 0), Metric("loss", 1.0 / (1 + i % 13), 0, 0)])
            client.set_terminated(r.info.run_id)
        open(marker, "w").close()
        exp = client.get_experiment_by_name("bench")
    import mlflow
    mlflow.set_tracking_uri(uri)
    times = []
    for _ in range(int(sys.argv[3])):
        t = time.perf_counter()
        df = mlflow.search_runs(experiment_ids=[exp.experiment_id], max_results=100000)
        times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps({"seconds": times[len(times) // 2], "rows": len(df), "version": mlflow.__version__}))
    """
)


def make_runs(root: Path, n: int) -> None:
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    t0 = 1764000000.0
    for i in range(n):
        rid = f"20261126-{i:06d}-{i % 4096:04x}"
        d = runs / rid
        d.mkdir(exist_ok=True)
        meta = {
            "id": rid,
            "experiment": "bench",
            "name": None,
            "status": "completed",
            "seed": i,  # one run per (config, seed): load_runs keeps every run
            "started": t0 + i,
            "ended": t0 + i + 30,
            "config": {
                "model": ["mlp", "linear", "cnn", "rnn", "tf"][i % 5],
                "optim": {"lr": 0.1 / (1 + i % 7), "momentum": 0.9},
                "train": {"steps": 100, "batch": 32},
            },
        }
        (d / "run.json").write_text(json.dumps(meta))
        (d / "summary.json").write_text(
            json.dumps({"test_acc": 0.5 + (i % 97) / 200, "loss": 1.0 / (1 + i % 13)})
        )


def bench_load_runs(n: int, mlflow_python: str | None, workdir: Path, repeat: int) -> None:
    from replicator.store.frames import load_runs

    store = workdir / f"store-{n}-unique-seeds"
    if not (store / "runs").is_dir() or len(os.listdir(store / "runs")) != n:
        shutil.rmtree(store, ignore_errors=True)
        make_runs(store, n)
    (store / "index.sqlite").unlink(missing_ok=True)
    cold, df = timed(lambda: load_runs(store=store, experiment="bench"))
    warm, df = timed(lambda: load_runs(store=store, experiment="bench"), repeat=repeat)
    print(
        f"\n## load_runs over {n:,} runs ({df.shape[0]:,} rows, {df.shape[1]} columns), "
        f"median of {repeat}"
    )
    print("| | time (s) |")
    print("|---|---:|")
    print(
        f"| replicator load_runs, index cold (built from the run directories, one run) | {cold:.2f} |"
    )
    print(f"| replicator load_runs, index warm | {warm:.2f} |")
    if mlflow_python and Path(mlflow_python).exists():
        mroot = workdir / f"mlflow-{n}"
        mroot.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [mlflow_python, "-c", MLFLOW_SCRIPT, str(mroot), str(n), str(repeat)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"MLflow side exited with {proc.returncode}:\n{proc.stderr}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"| MLflow {res['version']} search_runs, local SQLite ({res['rows']:,} rows) | {res['seconds']:.2f} |"
        )
        print(f"\nload_runs (warm) is {res['seconds'] / warm:.1f}x faster than MLflow search_runs")
    else:
        print("| MLflow: not run (pass --mlflow-python PATH to a venv with mlflow) | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    # `make bench` installs MLflow next to replicator (.venv-bench); else a venv of its own.
    has_mlflow = importlib.util.find_spec("mlflow") is not None
    parser.add_argument(
        "--mlflow-python", default=sys.executable if has_mlflow else "/tmp/bench-mlflow/bin/python"
    )
    parser.add_argument("--workdir", default="/tmp/replicator-bench-stats")
    parser.add_argument("--only", choices=["iqm", "bands", "load"], default=None)
    parser.add_argument("--repeat", type=int, default=3, help="repeats per side (median)")
    parser.add_argument(
        "--runs",
        type=int,
        default=10_000,
        help="runs for load_runs vs MLflow (building MLflow's store takes minutes per 1,000)",
    )
    parser.add_argument(
        "--reps", type=int, default=50_000, help="IQM bootstrap resamples (default 50,000)"
    )
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    if args.only in (None, "iqm"):
        bench_iqm(
            reps=2_000 if args.quick else args.reps,
            methods=2 if args.quick else 5,
            repeat=args.repeat,
        )
    if args.only in (None, "bands"):
        bench_bands(5, 10, 50 if args.quick else 200, args.repeat)
    if args.only in (None, "load"):
        bench_load_runs(500 if args.quick else args.runs, args.mlflow_python, workdir, args.repeat)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
