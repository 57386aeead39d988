"""Server time of ``replicator ui`` (issue 16), the real server in a subprocess, over HTTP:

1. ``/api/runs`` over a generated store of 10,000 runs (``ui_store.make_store``), and with a
   ``where`` filter: the first request (sent as soon as the server prints its URL; the server
   reads the run directories from its start) and later ones (median of ``--repeat``).
2. ``/api/runs/{id}/metrics`` of a run with 1,000,000 points, downsampled to 2,000 with LTTB:
   the first request (metrics.jsonl parsed) and later ones (parsed points cached, only LTTB);
   the full data as CSV.
3. Peer, command against command: the MLflow tracking server (``mlflow server``, its recommended
   way to serve a store) answering ``runs/search`` over the same 1,000 runs in the SQLite store
   ``bench_stats.py`` builds (``/tmp/replicator-bench-stats/mlflow-1000``; building 10,000 takes
   about an hour here), against ``/api/runs`` over the same 1,000 runs, alternated, median of
   ``--repeat``; with a filter on a metric on both sides.

Every time is the wall time of one HTTP request from a client on the same machine (the answer
read and decoded), the server already started.

Run: ``.venv-bench/bin/python benchmarks/bench_ui_server.py [--repeat 5] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from ui_store import make_store, run_id, write_metrics

REPO = Path(__file__).resolve().parents[1]


def median_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


@contextmanager
def replicator_ui(store: Path, started: list[float] | None = None) -> Iterator[str]:
    """The server's URL; ``started`` gets the perf_counter time of the process start."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if started is not None:
        started.append(time.perf_counter())
    proc = subprocess.Popen(
        [sys.executable, "-m", "replicator", "ui", "--port", "0", "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("replicator ui: "):
            raise RuntimeError(f"replicator ui did not start: {line}{proc.stderr.read()}")
        yield line.split(": ", 1)[1].strip().rstrip("/")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mlflow_server(mlflow_python: str, db: Path) -> Iterator[str]:
    port = free_port()
    mlflow = Path(mlflow_python).parent / "mlflow"
    proc = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start within 300 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def get_json(url: str, **params: str) -> dict:  # type: ignore[type-arg]
    answer = httpx.get(url, params=params, timeout=300)
    answer.raise_for_status()
    data: dict = answer.json()  # type: ignore[type-arg]
    return data


def bench_runs(workdir: Path, n: int, points: int, repeat: int) -> None:
    store = workdir / f"ui-store-{n}"
    if not (store / "runs").is_dir() or len(os.listdir(store / "runs")) != n:
        shutil.rmtree(store, ignore_errors=True)
        t = time.perf_counter()
        make_store(store, n)
        print(f"generated {n:,} runs in {time.perf_counter() - t:.1f} s")
    first_run = store / "runs" / run_id(0)
    metrics = first_run / "metrics.jsonl"
    if points and (not metrics.exists() or metrics.stat().st_size < points * 50):
        write_metrics(first_run, points)
    (store / "index.sqlite").unlink(missing_ok=True)
    where = "config.optim.lr < 0.03 and summary.test_acc > 0.7"
    started: list[float] = []
    with replicator_ui(store, started) as url:
        t = time.perf_counter()
        rows = len(get_json(f"{url}/api/runs")["runs"])
        cold = time.perf_counter() - t
        since_start = time.perf_counter() - started[0]
        warm, _ = median_time(lambda: get_json(f"{url}/api/runs"), repeat)
        filtered_time, filtered = median_time(
            lambda: get_json(f"{url}/api/runs", where=where), repeat
        )
        print(f"\n## /api/runs over {n:,} runs ({rows:,} rows), median of {repeat}\n")
        print("| request | time (s) |")
        print("|---|---:|")
        print(
            "| first, sent as soon as the URL is printed (the runs read from their "
            f"directories, one request) | {cold:.3f} |"
        )
        print(f"| the same, counted from the server's process start | {since_start:.3f} |")
        print(f"| later (the runs kept in memory) | {warm:.3f} |")
        count = len(filtered["runs"])  # type: ignore[index]
        print(f"| `where={where}` ({count:,} rows) | {filtered_time:.3f} |")
        if points:
            path = f"{url}/api/runs/{run_id(0)}/metrics"
            t = time.perf_counter()
            first = get_json(path, points="2000")
            cold_m = time.perf_counter() - t
            warm_m, _ = median_time(lambda: get_json(path, points="2000"), repeat)
            series = first["series"]["loss"]
            kept = len(series["step"])
            has_spike = max(series["value"]) == 25.0
            t = time.perf_counter()
            csv_bytes = len(httpx.get(f"{path}.csv", timeout=600).content)
            csv_time = time.perf_counter() - t
            print(f"\n## /api/runs/ID/metrics, {series['total']:,} points -> {kept:,} (LTTB)\n")
            print("| request | time (s) |")
            print("|---|---:|")
            print(f"| first (metrics.jsonl parsed, one request) | {cold_m:.3f} |")
            print(f"| later (parsed points cached; LTTB only), median of {repeat} | {warm_m:.3f} |")
            print(f"| full data as CSV ({csv_bytes / 1e6:.0f} MB, one request) | {csv_time:.3f} |")
            print(f"\nthe spike (the series' maximum) kept: {has_spike}")


def bench_peer(workdir: Path, mlflow_python: str | None, mlflow_db: Path, repeat: int) -> None:
    n = 1000
    marker = mlflow_db.parent / f"built-{n}"
    if not mlflow_python or not Path(mlflow_python).exists() or not marker.exists():
        print(
            f"\nMLflow peer: not run (needs {marker}, built by bench_stats.py --runs {n}, "
            "and --mlflow-python)"
        )
        return
    store = make_store(workdir / f"ui-store-peer-{n}", n)
    with replicator_ui(store) as ours, mlflow_server(mlflow_python, mlflow_db) as theirs:
        experiment = httpx.get(
            f"{theirs}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": "bench"},
            timeout=60,
        ).json()["experiment"]["experiment_id"]

        def mlflow_search(filter_string: str = "") -> int:
            body = {"experiment_ids": [experiment], "max_results": n, "filter": filter_string}
            answer = httpx.post(f"{theirs}/api/2.0/mlflow/runs/search", json=body, timeout=300)
            answer.raise_for_status()
            return len(answer.json().get("runs", []))

        def ours_search(where: str = "") -> int:
            params = {"where": where} if where else {}
            return len(get_json(f"{ours}/api/runs", **params)["runs"])

        ours_search()  # the index built once, as MLflow's store is
        mlflow_search()
        results: dict[str, list[float]] = {k: [] for k in ("ours", "mlflow", "ours_f", "mlflow_f")}
        rows: dict[str, int] = {}
        for _ in range(repeat):
            for key, fn in (
                ("ours", lambda: ours_search()),
                ("mlflow", lambda: mlflow_search()),
                ("ours_f", lambda: ours_search("summary.test_acc > 0.7")),
                ("mlflow_f", lambda: mlflow_search("metrics.test_acc > 0.7")),
            ):
                t = time.perf_counter()
                rows[key] = fn()
                results[key].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in results.items()}
        print(
            f"\n## the same {n:,} runs: replicator ui vs MLflow tracking server, median of {repeat}\n"
        )
        print("| request | replicator ui (s) | MLflow server (s) | ratio |")
        print("|---|---:|---:|---:|")
        print(
            f"| all runs ({rows['ours']:,} / {rows['mlflow']:,} rows) | {med['ours']:.3f} | "
            f"{med['mlflow']:.3f} | {med['mlflow'] / med['ours']:.1f}x |"
        )
        print(
            f"| test_acc > 0.7 ({rows['ours_f']:,} / {rows['mlflow_f']:,} rows) | "
            f"{med['ours_f']:.3f} | {med['mlflow_f']:.3f} | {med['mlflow_f'] / med['ours_f']:.1f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000 runs, 100,000 points")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/replicator-bench-ui"))
    parser.add_argument("--mlflow-python", default=sys.executable)
    parser.add_argument(
        "--mlflow-db",
        type=Path,
        default=Path("/tmp/replicator-bench-stats/mlflow-1000/mlflow.db"),
    )
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.points = 1000, 100_000
    args.workdir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores, load {load}")
    bench_runs(args.workdir, args.runs, args.points, args.repeat)
    if not args.skip_peer:
        bench_peer(args.workdir, args.mlflow_python, args.mlflow_db, args.repeat)
    print(json.dumps({"load_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
