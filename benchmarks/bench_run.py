"""What the run record costs, side by side with the peers, in one process tree.

1. `import replicator` versus `import mlflow` and `import wandb` (fresh interpreters; median).
2. The time `replicator.start()` blocks before user code runs, under plain python in a git repo
   (target: < 100 ms; no pip freeze, no import of torch).
3. `run.log` per call versus `list.append`, `mlflow.log_metric` (local sqlite store; its file
   store is deprecated and refuses to start), and TensorBoard writers (`torch.utils.tensorboard.SummaryWriter.add_scalar`).
   Targets: within 10x of list.append, at least 10x cheaper than the fastest peer.

Run: .venv-bench/bin/python benchmarks/bench_run.py   (make bench runs every benchmark)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONWARNINGS": "ignore"}


def fresh_import(module: str, repeat: int = 7) -> float | None:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = []
    for _ in range(repeat):
        proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=ENV)
        if proc.returncode != 0:
            return None
        times.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


START_CODE = """
import sys, time, json
t0 = time.perf_counter()
import replicator
t1 = time.perf_counter()
run = replicator.start({"lr": 0.1}, seed=1)
t2 = time.perf_counter()
heavy = [m for m in ("torch", "pip", "pandas", "omegaconf") if m in sys.modules]
run.finish()
print(json.dumps({"import": t1 - t0, "start": t2 - t1, "heavy": heavy}))
"""


def start_blocking(repeat: int = 7) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "init", "-q", tmp], check=True)
        for i in range(50):
            Path(tmp, f"module_{i}.py").write_text(f"X = {i}\n" * 20)
        subprocess.run(["git", "-C", tmp, "add", "-A"], check=True)
        subprocess.run(
            ["git", "-C", tmp, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"],
            check=True,
        )
        results = []
        for _ in range(repeat):
            proc = subprocess.run(
                [PY, "-c", START_CODE], cwd=tmp, capture_output=True, text=True, env=ENV
            )
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        "import_s": statistics.median(r["import"] for r in results),
        "start_s": statistics.median(r["start"] for r in results),
        "heavy_modules": results[-1]["heavy"],
    }


def per_call(fn, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t) / n


def log_costs() -> dict:
    import replicator

    out: dict[str, float | str] = {}
    sink: list = []
    n = 200_000
    out["list.append"] = min(per_call(lambda i: sink.append({"loss": 0.5}), n) for _ in range(3))
    with (
        tempfile.TemporaryDirectory() as tmp,
        replicator.start({}, seed=1, store=Path(tmp) / "store") as run,
    ):
        out["replicator run.log"] = min(
            per_call(lambda i: run.log({"loss": 0.5}, step=i), n) for _ in range(3)
        )
    try:
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
            with mlflow.start_run():
                out["mlflow.log_metric (sqlite)"] = per_call(
                    lambda i: mlflow.log_metric("loss", 0.5, step=i), 300
                )
    except ImportError:
        out["mlflow.log_metric (sqlite)"] = "not installed"
    try:
        from torch.utils.tensorboard import SummaryWriter

        with tempfile.TemporaryDirectory() as tmp:
            writer = SummaryWriter(tmp)
            out["tensorboard add_scalar"] = per_call(
                lambda i: writer.add_scalar("loss", 0.5, i), 20_000
            )
            writer.close()
    except ImportError:
        out["tensorboard add_scalar"] = "not installed"
    return out


def main() -> None:
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores\n")
    base = fresh_import("sys")
    print("1. import time (fresh interpreter, median of 7)")
    imports = {m: fresh_import(m) for m in ("replicator", "mlflow", "wandb")}
    for m, t in imports.items():
        if t is None:
            print(f"   {m:12s} not installed")
        else:
            ratio = (
                f"  ({t / imports['replicator']:.0f}x replicator)"
                if m != "replicator" and imports["replicator"]
                else ""
            )
            print(f"   {m:12s} {t * 1000:8.1f} ms{ratio}")
    print(f"   (baseline `import sys`: {base * 1000:.2f} ms)\n")

    s = start_blocking()
    print("2. replicator.start() blocking time under plain python in a git repo (median of 7)")
    print(
        f"   import replicator {s['import_s'] * 1000:.1f} ms; start() {s['start_s'] * 1000:.1f} ms "
        f"(target < 100 ms); heavy modules loaded: {s['heavy_modules'] or 'none'}\n"
    )

    costs = log_costs()
    print("3. cost per logged metric")
    base_cost = costs["list.append"]
    peers = [
        v
        for k, v in costs.items()
        if isinstance(v, float) and k not in ("list.append", "replicator run.log")
    ]
    for k, v in costs.items():
        if isinstance(v, float):
            print(f"   {k:32s} {v * 1e9:12.0f} ns  ({v / base_cost:8.1f}x list.append)")
        else:
            print(f"   {k:32s} {v}")
    mine = costs["replicator run.log"]
    assert isinstance(mine, float)
    if peers:
        print(
            f"\n   run.log is {min(peers) / mine:.0f}x cheaper than the fastest peer "
            f"(target >= 10x) and {mine / base_cost:.1f}x list.append (target <= 10x)"
        )


if __name__ == "__main__":
    main()
