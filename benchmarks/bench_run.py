"""What the run record costs, side by side with the peers, in one process tree.

1. The time to a first usable run, in a fresh interpreter in a git repo: the import plus the call
   that starts a run (`import replicator` + `replicator.start()`; `import mlflow` +
   `mlflow.start_run()` on a local sqlite store; `import wandb` + `wandb.init(mode="offline")`;
   TensorBoard's `SummaryWriter()`), because `import replicator` defers work to the first call.
   The import alone is printed beside it; median of the same number of fresh interpreters.
2. Of that, the time `replicator.start()` blocks before user code runs (target: < 100 ms; no pip
   freeze, no import of torch).
3. The whole cost of logging: the calls *and* the flush until the data is in the file, in one
   timed loop, median of the same number of repeats, each contender in a fresh process (after a
   50-call warm-up): `run.log` + `run.flush()` (metrics.jsonl and summary.json); `list.append` of
   the same dict in the same loop shape; TensorBoard `add_scalar` + `writer.flush()` (its writer
   thread running during the loop); `mlflow.log_metric` on a local sqlite store, asynchronous
   (`synchronous=False`, MLflow's fast mode) + `mlflow.flush_async_logging()`, and synchronous
   (one float a call only). 100,000 values a loop, so that a flush's fixed cost (a summary.json
   write, an event-file flush) weighs as in a training loop that flushes twice a second; MLflow
   gets 300 calls in both modes, as each call costs milliseconds whatever their number. Three
   workloads: one float a call, a dict of ten floats a call (10,000 calls; TensorBoard: ten
   `add_scalar`, MLflow: `log_metrics`), and a CPU torch scalar tensor (list.append and MLflow
   get `.item()`, which they need to keep the value). The floats are full-precision
   (`1 / (i + 3)`), as a loss is. Targets for one float a call: within 10x list.append, at
   least 10x cheaper than the fastest peer.

Run: .venv-bench/bin/python benchmarks/bench_run.py [--calls N] [--mlflow-calls M] [--repeat R]
(make bench runs every benchmark)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

PY = sys.executable
ENV = {
    **os.environ,
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "PYTHONWARNINGS": "ignore",
    "PYTHONHASHSEED": "0",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",  # chosen per call below
}

# Each prints {"import": s, "start": s} for one fresh interpreter; cwd is a git repo.
FIRST_RUN = {
    "replicator": """
        t0 = time.perf_counter()
        import replicator
        t1 = time.perf_counter()
        run = replicator.start({"lr": 0.1}, seed=1)
        t2 = time.perf_counter()
        heavy = [m for m in ("torch", "numpy", "pip", "pandas", "omegaconf") if m in sys.modules]
        run.finish()
    """,
    "mlflow": """
        t0 = time.perf_counter()
        import mlflow
        t1 = time.perf_counter()
        mlflow.set_tracking_uri("sqlite:///" + os.path.abspath("mlflow.db"))
        run = mlflow.start_run()
        mlflow.log_params({"lr": 0.1})
        t2 = time.perf_counter()
        heavy = []
        mlflow.end_run()
    """,
    "wandb": """
        t0 = time.perf_counter()
        import wandb
        t1 = time.perf_counter()
        run = wandb.init(mode="offline", config={"lr": 0.1}, dir=".")
        t2 = time.perf_counter()
        heavy = []
        run.finish()
    """,
    "tensorboard": """
        t0 = time.perf_counter()
        from torch.utils.tensorboard import SummaryWriter
        t1 = time.perf_counter()
        writer = SummaryWriter("tb")
        writer.add_text("lr", "0.1")
        t2 = time.perf_counter()
        heavy = []
        writer.close()
    """,
}


def first_run(tool: str, repo: Path, repeat: int) -> dict[str, Any] | None:
    """Median import time and import + start time of ``tool`` over fresh interpreters."""
    code = "import os, sys, time, json\n" + textwrap.dedent(FIRST_RUN[tool])
    code += '\nprint(json.dumps({"import": t1 - t0, "start": t2 - t1, "heavy": heavy}))\n'
    results = []
    for attempt in range(repeat + 1):  # the first one creates the store (mlflow.db, ...)
        proc = subprocess.run(
            [PY, "-c", code], cwd=repo, capture_output=True, text=True, env=ENV, timeout=600
        )
        if proc.returncode != 0:
            return None
        if attempt:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        "import": statistics.median(r["import"] for r in results),
        "start": statistics.median(r["start"] for r in results),
        "total": statistics.median(r["import"] + r["start"] for r in results),
        "heavy": results[-1]["heavy"],
    }


def git_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    for i in range(50):
        Path(path, f"module_{i}.py").write_text(f"X = {i}\n" * 20)
    Path(path, ".gitignore").write_text("mlflow.db\nmlruns/\nwandb/\ntb/\n")
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(path), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"],
        check=True,
    )
    return path


def whole_cost(
    call: Callable[[int], Any], flush: Callable[[], Any], calls: int
) -> tuple[float, float]:
    """Wall and CPU seconds (all the process's threads) per call, of ``calls`` calls plus the
    flush that puts them in the file. The CPU time leaves out the time the machine ran others."""
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        call(i)
    flush()
    return (time.perf_counter() - t) / calls, (time.process_time() - cpu) / calls


def nothing() -> None:
    pass


class Contender:
    """One way of logging: ``make(tmp)`` returns (call, flush, close) for one workload."""

    def __init__(self, name: str, make: Callable[[Path], tuple[Any, Any, Any]]) -> None:
        self.name = name
        self.make = make


def contenders(workload: str, calls: int) -> list[Contender]:
    """Every contender for ``workload`` (scalar, dict10 or tensor), with its values made."""
    floats = [1.0 / (i + 3) for i in range(calls)]
    names = [f"metric_{k}" for k in range(10)]
    tensors: list[Any] = []
    if workload == "tensor":
        import torch

        tensors = [torch.tensor(v) for v in floats]

    def row(i: int) -> dict[str, Any]:
        return {name: floats[i] + k for k, name in enumerate(names)}

    found = [Contender("list.append", _list_append(workload, floats, tensors, row))]
    found.append(Contender("replicator run.log", _replicator(workload, floats, tensors, row)))
    found += _tensorboard(workload, floats, tensors, row)
    found += _mlflow(workload, floats, tensors, row)
    return found


def measure(workload: str, name: str, calls: int, repeat: int) -> list[tuple[float, float]]:
    """Wall and CPU seconds per call of one contender, ``repeat`` times (in its own process)."""
    (contender,) = [c for c in contenders(workload, calls) if c.name == name]
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            call, flush, close = contender.make(Path(tmp))
            try:
                whole_cost(call, flush, min(calls, 50))  # warm-up: first-call work, caches
                times.append(whole_cost(call, flush, calls))
            finally:
                close()
    return times


def log_costs(workload: str, args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU seconds per call, per contender, printed as they come; each
    contender in a fresh process, so that no thread of one (MLflow's queue) runs beside another."""
    per = 10 if workload == "dict10" else 1  # the same number of values in every workload
    walls: dict[str, float] = {}
    cpus: dict[str, float] = {}
    for contender in contenders(workload, 1):
        calls = args.calls // per
        if contender.name.startswith("mlflow"):
            calls = args.mlflow_calls
        worker = ["--worker", workload, contender.name, f"--calls={calls}"]
        proc = subprocess.run(
            [PY, __file__, *worker, f"--repeat={args.repeat}"],
            capture_output=True,
            text=True,
            env=ENV,
        )
        if proc.returncode != 0:
            why = "not installed" if "ModuleNotFoundError" in proc.stderr else proc.stderr[-300:]
            print(f"   {contender.name:34s} {why.strip()}", flush=True)
            continue
        times = json.loads(proc.stdout.splitlines()[-1])
        wall = walls[contender.name] = statistics.median(t[0] for t in times)
        cpu = cpus[contender.name] = statistics.median(t[1] for t in times)
        mine = walls.get("replicator run.log", wall)
        peer = f"{wall / mine:8.1f}x" if _is_peer(contender.name) else " " * 9
        print(
            f"   {contender.name:34s} {wall / per * 1e9:10.0f} ns {wall / walls['list.append']:8.1f}x"
            f" {cpu / per * 1e9:10.0f} ns {cpu / cpus['list.append']:8.1f}x {peer}  {calls:7d}",
            flush=True,
        )
    return walls, cpus


def _list_append(workload: str, floats: list[float], tensors: list[Any], row: Any) -> Any:
    def make(tmp: Path) -> tuple[Any, Any, Any]:
        sink: list[Any] = []
        add = sink.append
        if workload == "scalar":
            return (lambda i: add({"loss": floats[i]})), nothing, nothing
        if workload == "dict10":
            return (lambda i: add(row(i))), nothing, nothing
        return (lambda i: add({"loss": tensors[i].item()})), nothing, nothing

    return make


def _replicator(workload: str, floats: list[float], tensors: list[Any], row: Any) -> Any:
    def make(tmp: Path) -> tuple[Any, Any, Any]:
        import replicator

        run = replicator.start({}, seed=1, store=tmp / "store")
        if run._capture_thread is not None:  # the capture beside the script: not in the loop
            run._capture_thread.join()
        log = run.log
        if workload == "scalar":
            call = lambda i: log({"loss": floats[i]}, step=i)  # noqa: E731
        elif workload == "dict10":
            call = lambda i: log(row(i), step=i)  # noqa: E731
        else:
            call = lambda i: log({"loss": tensors[i]}, step=i)  # noqa: E731
        return call, run.flush, run.finish

    return make


def _tensorboard(workload: str, floats: list[float], tensors: list[Any], row: Any) -> list[Any]:
    def make(tmp: Path) -> tuple[Any, Any, Any]:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(tmp))
        add = writer.add_scalar
        if workload == "scalar":
            call = lambda i: add("loss", floats[i], i)  # noqa: E731
        elif workload == "dict10":

            def call(i: int) -> None:
                for name, value in row(i).items():
                    add(name, value, i)
        else:
            call = lambda i: add("loss", tensors[i], i)  # noqa: E731
        return call, writer.flush, writer.close

    return [Contender("tensorboard add_scalar", make)]


def _mlflow(workload: str, floats: list[float], tensors: list[Any], row: Any) -> list[Any]:
    def maker(synchronous: bool) -> Any:
        def make(tmp: Path) -> tuple[Any, Any, Any]:
            import mlflow

            mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
            mlflow.start_run()
            log_metric, log_metrics = mlflow.log_metric, mlflow.log_metrics
            if workload == "scalar":
                call = lambda i: log_metric("loss", floats[i], step=i, synchronous=synchronous)  # noqa: E731
            elif workload == "dict10":
                call = lambda i: log_metrics(row(i), step=i, synchronous=synchronous)  # noqa: E731
            else:
                call = lambda i: log_metric(  # noqa: E731
                    "loss", tensors[i].item(), step=i, synchronous=synchronous
                )
            flush = nothing if synchronous else mlflow.flush_async_logging
            return call, flush, mlflow.end_run

        return make

    found = [Contender("mlflow log_metric async (sqlite)", maker(False))]
    if workload == "scalar":  # the synchronous mode is slow: timed on one workload only
        found.append(Contender("mlflow log_metric sync (sqlite)", maker(True)))
    return found


def _is_peer(name: str) -> bool:
    return name.split()[0] not in ("list.append", "replicator")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="values logged a loop")
    parser.add_argument("--mlflow-calls", type=int, default=300, help="MLflow's calls a loop")
    parser.add_argument("--repeat", type=int, default=5, help="repeats (the median is shown)")
    parser.add_argument("--fresh", type=int, default=5, help="fresh interpreters a first run")
    parser.add_argument("--skip-first-run", action="store_true")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # PYTHONHASHSEED advice, MLflow's deprecations
    if args.worker:
        print(json.dumps(measure(*args.worker, args.calls, args.repeat)))  # one line, last
        return
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores, load {os.getloadavg()}\n")

    if not args.skip_first_run:
        with tempfile.TemporaryDirectory() as tmp:
            repo = git_repo(Path(tmp))
            first = {tool: first_run(tool, repo, args.fresh) for tool in FIRST_RUN}
        mine = first["replicator"]
        assert mine is not None
        print(f"1. first usable run: import + start (fresh interpreter, median of {args.fresh})")
        for tool, r in first.items():
            if r is None:
                print(f"   {tool:12s} not installed")
                continue
            ratio = f"  ({r['total'] / mine['total']:5.0f}x replicator)" if r is not mine else ""
            print(
                f"   {tool:12s} {r['total'] * 1000:8.1f} ms{ratio}   "
                f"(import {r['import'] * 1000:.1f} ms + start {r['start'] * 1000:.1f} ms)"
            )
        print(
            f"\n2. replicator.start() blocks {mine['start'] * 1000:.1f} ms (target < 100 ms); "
            f"heavy modules loaded: {mine['heavy'] or 'none'}\n"
        )

    print(
        f"3. whole cost per logged value: the calls + the flush into the file, in one timed "
        f"loop, median of {args.repeat}; {args.calls} values a loop (MLflow: "
        f"{args.mlflow_calls} calls, each costs milliseconds)",
        flush=True,
    )
    titles = {
        "scalar": "one float a call",
        "dict10": "a dict of ten floats a call (ns per value: the call / 10)",
        "tensor": "a CPU torch scalar tensor a call",
    }
    for workload, title in titles.items():
        print(f"\n   {title}", flush=True)
        print(
            f"   {'':34s} {'wall':>13s} {'x append':>9s} {'CPU':>13s} {'x append':>9s} "
            f"{'peer/mine':>9s}  {'calls':>7s}"
        )
        walls, cpus = log_costs(workload, args)
        mine = "replicator run.log"
        peers = [k for k in walls if _is_peer(k)]
        if peers and workload == "scalar":
            fastest = min(peers, key=lambda k: cpus[k])
            print(
                f"   run.log: {cpus[mine] / cpus['list.append']:.1f}x list.append in CPU time "
                f"({walls[mine] / walls['list.append']:.1f}x wall; target <= 10x), "
                f"{cpus[fastest] / cpus[mine]:.0f}x cheaper than the fastest peer in CPU time "
                f"({walls[fastest] / walls[mine]:.0f}x wall; target >= 10x)"
            )


if __name__ == "__main__":
    main()
