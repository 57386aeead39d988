"""What a user of ``replicator ui`` waits for, in a real browser (issue 16), against MLflow's UI.

Headless Debian Chromium driven by Playwright; each page load in a fresh browser context (no
cache), timed from the navigation's start to the moment the thing is on screen:

1. the runs table of a store of 10,000 runs (``ui_store.make_store``): the first row drawn;
2. a filter on that table (``config.optim.lr < 0.03 and summary.test_acc > 0.8``): from the
   Enter key to the table showing the filtered count;
3. the run page of a run with 1,000,000 metric points (``ui_store.write_metrics``): the loss curve
   drawn (the server downsamples to 2,000 points with LTTB), and the full data as CSV over HTTP
   (all 1,000,000 rows counted);
4. peer: MLflow's UI (``mlflow server``, what ``mlflow ui`` runs) over the same 10,000 runs imported
   into an MLflow SQLite store: its runs table's first row drawn, in the same browser. The runs are
   written straight into MLflow's tables (the schema made by MLflow itself), because logging
   10,000 runs through its client takes about an hour here.

Each side's server is started and answered one request before the timed loads (the first load of
``replicator ui`` is reported apart: it builds the store's index). Sides alternated, median of
``--repeat``. Stores are cached under ``--workdir``.

Run: ``.venv/bin/python benchmarks/bench_ui_browser.py [--repeat 5] [--runs 10000]
[--points 1000000] [--skip-mlflow]`` (the interpreter needs Playwright; MLflow is taken from the
same environment or from ``--mlflow-python``)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from ui_store import make_store, run_id, write_metrics

FILTER = "config.optim.lr < 0.03 and summary.test_acc > 0.8"
VIEWPORT = {"width": 1400, "height": 900}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[Any], what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=30).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout} s")
        time.sleep(0.3)


@contextmanager
def serve(cmd: list[str], health: str, what: str) -> Iterator[subprocess.Popen[Any]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(health, proc, what)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def build_store(workdir: Path, runs: int, points: int) -> Path:
    store = workdir / f"store-{runs}"
    marker = store / f"built-{points}"
    if not marker.exists():
        shutil.rmtree(store, ignore_errors=True)
        print(f"making a store of {runs:,} runs, run {run_id(0)} with {points:,} points...")
        make_store(store, runs, failed_every=50)
        write_metrics(store / "runs" / run_id(0), points)
        marker.touch()
    return store


def build_mlflow(workdir: Path, store: Path, runs: int, mlflow_python: str) -> Path:
    """The same runs in an MLflow SQLite store: MLflow makes the schema, the rows are inserted."""
    db = workdir / f"mlflow-{runs}.db"
    marker = workdir / f"mlflow-{runs}.built"
    if marker.exists():
        return db
    db.unlink(missing_ok=True)
    print(f"importing {runs:,} runs into MLflow's SQLite store {db}...")
    make_schema = (
        "import sys; from mlflow.tracking import MlflowClient; "
        "MlflowClient(tracking_uri='sqlite:///' + sys.argv[1]).create_experiment("
        "'bench', artifact_location=sys.argv[2])"
    )
    subprocess.run(
        [mlflow_python, "-c", make_schema, str(db), str(workdir / "mlflow-artifacts")],
        check=True, capture_output=True,
    )  # fmt: skip
    con = sqlite3.connect(db)
    (experiment_id,) = con.execute(
        "SELECT experiment_id FROM experiments WHERE name='bench'"
    ).fetchone()
    rows: dict[str, list[tuple[Any, ...]]] = {
        "runs": [],
        "params": [],
        "metrics": [],
        "latest": [],
        "tags": [],
    }
    for folder in sorted((store / "runs").iterdir()):
        meta = json.loads((folder / "run.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
        uid = uuid.uuid5(uuid.NAMESPACE_URL, meta["id"]).hex
        start, end = int(meta["started"] * 1000), int(meta["ended"] * 1000)
        status = "FINISHED" if meta["status"] == "completed" else "FAILED"
        rows["runs"].append((uid, meta["id"], "LOCAL", "train.py", "", "bench", status, start, end,
                             "", "active", f"{workdir}/mlflow-artifacts/{uid}", experiment_id))  # fmt: skip
        config = meta["config"]
        flat = {"model": config["model"], "optim.lr": config["optim"]["lr"],
                "optim.momentum": config["optim"]["momentum"], "train.steps": config["train"]["steps"],
                "train.batch": config["train"]["batch"], "seed": meta["seed"]}  # fmt: skip
        rows["params"] += [(k, str(v), uid) for k, v in flat.items()]
        rows["metrics"] += [(k, float(v), end, uid, 0, 0) for k, v in summary.items()]
        rows["latest"] += [(k, float(v), end, 0, 0, uid) for k, v in summary.items()]
        rows["tags"] += [("mlflow.runName", meta["id"], uid), ("mlflow.user", "bench", uid)]
    with con:
        con.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,"
            " status, start_time, end_time, source_version, lifecycle_stage, artifact_uri,"
            " experiment_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows["runs"],
        )
        con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", rows["params"])
        con.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?,?,?,?,?,?)",
            rows["metrics"],
        )
        con.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
            " VALUES (?,?,?,?,?,?)",
            rows["latest"],
        )
        con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", rows["tags"])
    con.close()
    marker.touch()
    return db


class Timer:
    """Loads pages in fresh contexts of one browser and times them."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.api: list[float] = []  # of the last timed load: the API requests' durations

    def api_seconds(self, page: Any, marker: str = "/api/") -> None:
        """How long the page waited for its data (request sent to answer read), from the
        browser's resource timing: the rest of a load is the browser's and the page's work."""
        self.api = page.evaluate(
            "marker => performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes(marker)).map(e => (e.responseEnd - e.startTime) / 1000)",
            marker,
        )

    def load(self, url: str, ready: Callable[[Any], None], marker: str = "/api/") -> float:
        context = self.browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(300_000)
        page = context.new_page()
        try:
            started = time.perf_counter()
            page.goto(url, wait_until="commit")
            ready(page)
            elapsed = time.perf_counter() - started
            self.api_seconds(page, marker)
            return elapsed
        finally:
            context.close()

    def filter_runs(self, url: str, expected: str) -> float:
        context = self.browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(300_000)
        page = context.new_page()
        try:
            page.goto(url)
            page.wait_for_selector("[data-testid=runs-row]")
            page.get_by_test_id("filter-input").fill(FILTER)
            started = time.perf_counter()
            page.get_by_test_id("filter-input").press("Enter")
            page.wait_for_function(
                "text => document.getElementById('run-count').textContent === text", arg=expected,
                polling="raf",
            )  # fmt: skip
            page.wait_for_selector("[data-testid=runs-row]")
            elapsed = time.perf_counter() - started
            self.api_seconds(page)
            self.api = self.api[-1:]  # the filtered request only
            return elapsed
        finally:
            context.close()


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "replicator-bench-ui-browser"
    )
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--mlflow-python", default=sys.executable)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("Chromium is not installed (apt-get install chromium)")
        return 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    store = build_store(args.workdir, args.runs, args.points)
    big = run_id(0)
    mlflow_db = None
    if not args.skip_mlflow:
        mlflow_db = build_mlflow(args.workdir, store, args.runs, args.mlflow_python)
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()}, "
          f"{subprocess.run([chromium, '--version'], capture_output=True, text=True).stdout.strip()}")  # fmt: skip

    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    ui_cmd = [sys.executable, "-m", "replicator", "ui", "--store", str(store), "--port", str(port)]
    results: dict[str, list[float]] = {"table": [], "filter": [], "chart": [], "mlflow": []}
    first: dict[str, float] = {}
    api: dict[str, list[float]] = {"table": [], "filter": [], "chart": [], "mlflow": []}
    with serve(ui_cmd, f"{ui}/static/app.css", "replicator ui"), sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox"] if os.geteuid() == 0 else []
        )
        timer = Timer(browser)
        rows = lambda page: page.wait_for_selector("[data-testid=runs-row]")  # noqa: E731
        chart = lambda page: page.wait_for_selector(  # noqa: E731
            "[data-testid=metric-chart][data-key=loss][data-points]"
        )
        started = time.perf_counter()
        httpx.get(f"{ui}/api/runs", timeout=600).raise_for_status()  # builds the store's index
        first["index"] = time.perf_counter() - started
        first["table"] = timer.load(f"{ui}/", rows)
        first["chart"] = timer.load(f"{ui}/runs/{big}", chart)  # parses the 1,000,000 points
        table = httpx.get(f"{ui}/api/runs", params={"where": FILTER}, timeout=300).json()
        expected = f"{len(table['runs'])} runs match the filter"

        mlflow_ctx = None
        if mlflow_db is not None:
            mport = free_port()
            mlflow_bin = str(Path(args.mlflow_python).parent / "mlflow")
            mlflow_ctx = serve(
                [mlflow_bin, "server", "--backend-store-uri", f"sqlite:///{mlflow_db}",
                 "--host", "127.0.0.1", "--port", str(mport), "--workers", "1"],
                f"http://127.0.0.1:{mport}/health", "mlflow server",
            )  # fmt: skip
            mlflow_ctx.__enter__()
            con = sqlite3.connect(mlflow_db)
            (eid,) = con.execute(
                "SELECT experiment_id FROM experiments WHERE name='bench'"
            ).fetchone()
            con.close()
            mlflow_url = f"http://127.0.0.1:{mport}/#/experiments/{eid}/runs"
            mlflow_rows = lambda page: page.wait_for_selector(  # noqa: E731
                ".ag-center-cols-container .ag-row", timeout=300_000
            )
            first["mlflow"] = timer.load(mlflow_url, mlflow_rows)
        try:
            for _ in range(args.repeat):
                results["table"].append(timer.load(f"{ui}/", rows))
                api["table"].append(sum(timer.api))
                if mlflow_ctx is not None:
                    results["mlflow"].append(timer.load(mlflow_url, mlflow_rows, "/ajax-api/"))
                    api["mlflow"].append(max(timer.api, default=0.0))
                results["filter"].append(timer.filter_runs(f"{ui}/", expected))
                api["filter"].append(sum(timer.api))
                results["chart"].append(timer.load(f"{ui}/runs/{big}", chart))
                api["chart"].append(max(timer.api, default=0.0))
        finally:
            if mlflow_ctx is not None:
                mlflow_ctx.__exit__(None, None, None)
        started = time.perf_counter()
        with httpx.stream("GET", f"{ui}/api/runs/{big}/metrics.csv", timeout=600) as answer:
            answer.raise_for_status()
            lines = sum(chunk.count(b"\n") for chunk in answer.iter_bytes())
        csv_seconds = time.perf_counter() - started
        browser.close()

    if lines - 1 != args.points:
        raise RuntimeError(f"the CSV has {lines - 1} rows, not {args.points}")
    print(
        f"\n{args.runs:,} runs, {args.points:,} points, median of {args.repeat} (sides alternated)"
    )

    def cell(kind: str) -> str:
        """Median wall time, and the median time the page waited for the API within it."""
        return f"{median(results[kind]):.2f} s (API {median(api[kind]):.2f} s)"

    print("| what | replicator ui | MLflow UI |")
    print("|---|---|---|")
    mlflow_table = f"{cell('mlflow')}, first {first['mlflow']:.2f} s" if results["mlflow"] else ""
    print(
        f"| runs table, first row drawn | {cell('table')}; first {first['table']:.2f} s after the"
        f" index build ({first['index']:.2f} s, first /api/runs) | {mlflow_table} |"
    )
    print(f"| filter `{FILTER}` ({expected}), Enter to rows | {cell('filter')} | |")
    print(
        f"| run page, curve of {args.points:,} points drawn | {cell('chart')};"
        f" first {first['chart']:.2f} s (metrics parsed) | |"
    )
    print(f"| full metrics CSV ({lines - 1:,} rows) over HTTP | {csv_seconds:.2f} s | |")
    if results["mlflow"]:
        ratio = median(results["mlflow"]) / median(results["table"])
        print(f"\nMLflow's runs table / replicator's: {ratio:.1f}x")
    print(f"load at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
