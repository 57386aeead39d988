"""What mirroring costs the training loop, side by side with each tool's own logger.

Each contender runs in a fresh interpreter, in a git repository, N one-float calls in one timed
loop (after a 50-call warm-up), and reports two times per logged scalar:

- **loop**: the calls alone, what the training loop pays;
- **whole**: the calls plus everything until the data is in the tool's files (replicator:
  ``run.finish()``, which flushes metrics.jsonl and waits for every sink to have received all
  points, the summary and the status; a tool: its flush/finish call).

replicator's contenders log with ``run.log``, in two cases, each with no sink, each sink alone
and all sinks:

- **in-process**: ``replicator.start(mirror=...)`` under plain python, so the sinks' worker
  threads share the training process;
- **replicator run**: ``replicator run --mirror NAME[,NAME...] -- python bench_train.py`` (``--mirror
  none`` for no sink; the sinks' options come from the repository's ``replicator.yaml``), the
  script joining with ``replicator.start()``: the recorder process feeds the sinks from
  ``metrics.jsonl`` and the training process only appends to it. The script times its loop and
  prints it; *whole* runs from the loop's start until the ``replicator run`` command exits (the
  recorder's end: every sink has received everything, run.json written).

In both the timed loop starts in the steady state of a training run: the script logs a 50-call
warm-up and waits until ``mirrors.json`` shows every sink opened (imported its tool, opened its
run: a one-time cost of seconds, before the loop as on the peers' side) with the warm-up sent. The
peers are each tool's own logger called directly in its fast mode: TensorBoard's event writer
(``EventFileWriter.add_event`` + ``flush``, the writer the sink uses, no torch), MLflow
``log_metric`` on a local sqlite store asynchronously (``synchronous=False``, MLflow's fast mode)
+ ``flush_async_logging()``, and W&B ``wandb.log`` offline + ``finish()``. Setting up a tool
(``start_run``, ``wandb.init``) is outside the timed window on both sides.

MLflow's direct calls cost milliseconds each: it gets ``--mlflow-calls`` calls (default 300);
the figures are per scalar. Visdom needs a server: the script starts visdom's own server
(``visdom.server.run_server.main``) on 127.0.0.1 when visdom is among the sinks. Median of
``--repeat`` runs, contenders alternated.

Run: .venv/bin/python benchmarks/bench_mirror.py [--calls N] [--repeat R] [--sinks a,b,...]
[--cases in-process,run]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PY = sys.executable
SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {
    **os.environ,
    "PYTHONPATH": str(SRC),
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "PYTHONWARNINGS": "ignore",
    "PYTHONHASHSEED": "0",
}
ALL_SINKS = ("tensorboard", "mlflow", "wandb", "comet", "neptune", "visdom")

REPLICATOR = """
import json, sys, time
import replicator
mirror = json.loads(sys.argv[1])
n = int(sys.argv[2])
run = replicator.start({"lr": 0.1}, mirror=mirror)
for i in range(50):
    run.log({"warm": 1 / (i + 3)}, step=i)
# steady state: every sink has set up (imported its tool, opened its run) and has the warm-up
deadline = time.monotonic() + 300
while mirror and time.monotonic() < deadline:
    try:
        state = json.load(open(run.dir / "mirrors.json"))
    except (OSError, ValueError):
        state = {}
    if len(state) == len(mirror) and all(s.get("sent_points", 0) >= 50 for s in state.values()):
        break
    time.sleep(0.05)
t0 = time.perf_counter()
for i in range(n):
    run.log({"loss": 1 / (i + 3)}, step=i)
t1 = time.perf_counter()
run.finish()
t2 = time.perf_counter()
state = {}
try:
    state = json.load(open(run.dir / "mirrors.json"))
except OSError:
    pass
bad = {k: v.get("status") for k, v in state.items() if v.get("status") != "ok"}
if bad or len(state) != len(mirror):
    sys.exit(f"sinks did not receive everything: {bad or state}")
print(json.dumps({"loop": t1 - t0, "whole": t2 - t0, "n": n}))
"""

# the same loop under `replicator run`: the recorder feeds the sinks; the script only appends
RUN_SCRIPT = """
import json, sys, time
import replicator
n, sinks = int(sys.argv[1]), int(sys.argv[2])
run = replicator.start({"lr": 0.1})
for i in range(50):
    run.log({"warm": 1 / (i + 3)}, step=i)
# steady state: the recorder has opened every sink (imported its tool, opened its run) and sent
# the warm-up (mirrors.json shows all sinks with 50 points)
deadline = time.monotonic() + 300
while sinks and time.monotonic() < deadline:
    try:
        state = json.load(open(run.dir / "mirrors.json"))
    except (OSError, ValueError):
        state = {}
    if len(state) == sinks and all(s.get("sent_points", 0) >= 50 for s in state.values()):
        break
    time.sleep(0.05)
start = time.monotonic()  # system-wide clock: the harness takes the end after the command exits
t0 = time.perf_counter()
for i in range(n):
    run.log({"loss": 1 / (i + 3)}, step=i)
t1 = time.perf_counter()
run.finish()
print(json.dumps({"loop": t1 - t0, "start": start, "n": n, "dir": str(run.dir)}), flush=True)
"""

PEERS = {
    "tensorboard": """
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
w = EventFileWriter("tb", max_queue_size=1024, flush_secs=5)
def log(i, v):
    s = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="loss", simple_value=v)])
    w.add_event(event_pb2.Event(wall_time=time.time(), step=i, summary=s))
def done():
    w.flush(); w.close()
""",
    "mlflow": """
import mlflow
mlflow.set_tracking_uri("sqlite:///" + os.path.abspath("mlflow.db"))
mlflow.start_run()
def log(i, v):
    mlflow.log_metric("loss", v, step=i, synchronous=False)
def done():
    mlflow.flush_async_logging(); mlflow.end_run()
""",
    "wandb": """
import wandb
r = wandb.init(mode="offline", dir=".", project="bench", settings=wandb.Settings(silent=True))
def log(i, v):
    r.log({"loss": v}, step=i)
def done():
    r.finish()
""",
}
PEER = """
import json, os, sys, time
n = int(sys.argv[1])
{setup}
for i in range(50):
    log(i, 1 / (i + 3))
t0 = time.perf_counter()
for i in range(50, 50 + n):
    log(i, 1 / (i + 3))
t1 = time.perf_counter()
done()
t2 = time.perf_counter()
print(json.dumps({{"loop": t1 - t0, "whole": t2 - t0, "n": n}}))
"""


def git_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "train.py").write_text("# benchmark\n")
    for name, text in (files or {}).items():
        (path / name).write_text(text)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(path), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "i"],
        check=True,
    )
    return path


def one(
    name: str, argv: list[str], root: Path, index: int, files: dict[str, str] | None = None
) -> dict[str, Any]:
    slug = name.replace(" ", "_").replace("+", "_").replace(",", "")
    cwd = git_repo(root / f"{slug}-{index}", files)
    proc = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    end = time.monotonic()
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            break
    else:
        raise RuntimeError(f"{name} printed no result: {proc.stdout[-2000:]}")
    if "start" in result:  # under `replicator run`: whole = until the command exited
        result["whole"] = end - result["start"]
    return result


def under_run(
    name: str, sinks: list[str], options: dict[str, dict[str, Any]], calls: int, root: Path,
    index: int,
) -> dict[str, Any]:  # fmt: skip
    """The loop in a script under ``replicator run --mirror``; checks every sink got everything."""
    yaml = "mirror:\n" + "".join(f"  {s}: {json.dumps(o)}\n" for s, o in options.items())
    argv = [
        PY, "-m", "replicator", "run", "--mirror", ",".join(sinks) or "none", "--",
        PY, "bench_train.py", str(calls), str(len(sinks)),
    ]  # fmt: skip
    files = {"bench_train.py": RUN_SCRIPT, "replicator.yaml": yaml}
    result = one(name, argv, root, index, files)
    state_path = Path(result["dir"]) / "mirrors.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    bad = {k: v.get("status") for k, v in state.items() if v.get("status") != "ok"}
    if bad or len(state) != len(sinks):
        raise RuntimeError(f"{name}: sinks did not receive everything: {bad or state}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_visdom(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    # visdom's own server without the web page's scripts download (`python -m visdom.server`
    # fetches them from CDNs first; the API does not need them)
    proc = subprocess.Popen(
        [PY, "-c", "from visdom.server.run_server import main; main()", "-port", str(port),
         "-bind_local", "-env_path", str(root / "visdom"), "-logging_level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=2).close()
            return proc, port
        except urllib.error.HTTPError:  # it answers (its page needs the scripts it lacks)
            return proc, port
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("visdom.server did not answer within 180 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--mlflow-calls", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sinks", default=",".join(ALL_SINKS))
    parser.add_argument("--cases", default="in-process,run", help="in-process, run, or both")
    args = parser.parse_args()
    sinks = [s for s in args.sinks.split(",") if s]
    kinds = [c for c in args.cases.split(",") if c]
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-mirror-") as tmp:
        root = Path(tmp)
        visdom = start_visdom(root) if "visdom" in sinks else None
        try:
            options: dict[str, dict[str, Any]] = {s: {} for s in sinks}
            if visdom is not None:
                options["visdom"] = {"server": "http://127.0.0.1", "port": visdom[1]}
            if "mlflow" in options:
                options["mlflow"] = {"tracking_uri": "sqlite:///" + str(root / "mlflow.db")}
            sets = {"no sink": [], **{sink: [sink] for sink in sinks}}
            if len(sinks) > 1:
                sets[f"all {len(sinks)}"] = sinks
            cases: dict[str, Any] = {}
            for label, chosen in sets.items():
                name = "replicator, no sink" if not chosen else f"replicator + {label}"
                if "in-process" in kinds:
                    mirror = json.dumps({s: options[s] for s in chosen})
                    argv = [PY, "-c", REPLICATOR, mirror, str(args.calls)]
                    cases[name] = lambda n, i, argv=argv: one(n, argv, root, i)
                if "run" in kinds:
                    chosen_options = {s: options[s] for s in chosen}
                    cases[name.replace("replicator", "replicator run", 1)] = (
                        lambda n, i, c=chosen, o=chosen_options: under_run(
                            n, c, o, args.calls, root, i
                        )
                    )
            for tool, setup in PEERS.items():
                if tool in sinks:
                    calls = args.mlflow_calls if tool == "mlflow" else args.calls
                    code = textwrap.dedent(PEER.format(setup=setup))
                    argv = [PY, "-c", code, str(calls)]
                    cases[f"{tool} direct"] = lambda n, i, argv=argv: one(n, argv, root, i)
            times: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
            for index in range(args.repeat):
                for name, case in cases.items():  # alternated, each in a fresh interpreter
                    times[name].append(case(name, index))
        finally:
            if visdom is not None:
                os.killpg(visdom[0].pid, signal.SIGTERM)
                visdom[0].wait(timeout=30)
    report(times, args)


def report(times: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    def per(name: str, what: str) -> float:
        return statistics.median(r[what] / r["n"] for r in times[name]) * 1e9

    prefixes = [p for p in ("replicator", "replicator run") if f"{p}, no sink" in times]

    def group(name: str) -> str:  # the case a row belongs to; peers compare with the first
        return "replicator run" if name.startswith("replicator run") else prefixes[0]

    print(
        f"\nns per logged scalar, median of {args.repeat} (loop: the calls; whole: until in files;"
        f" x: of the same case's no sink)"
    )
    print(f"{'':32} {'loop':>10} {'x no sink':>10} {'whole':>12} {'x no sink':>10}")
    order = sorted(times, key=lambda n: (n.endswith(" direct"), n.startswith("replicator run")))
    for name in order:
        base = f"{group(name)}, no sink"
        loop, whole = per(name, "loop"), per(name, "whole")
        print(
            f"{name:32} {loop:10.0f} {loop / per(base, 'loop'):9.2f}x {whole:12.0f} "
            f"{whole / per(base, 'whole'):9.2f}x"
        )
    print()
    for prefix in prefixes:
        for name in times:
            if name.endswith(" direct"):
                tool = name.split()[0]
                mine = f"{prefix} + {tool}"
                print(
                    f"{tool}: loop {per(name, 'loop') / per(mine, 'loop'):.1f}x cheaper with "
                    f"{mine} than {tool}'s own logger; whole cost {per(name, 'whole'):.0f} vs "
                    f"{per(mine, 'whole'):.0f} ns per scalar"
                )
    print()
    for prefix in prefixes:
        many = [n for n in times if n.startswith(f"{prefix} + all")]
        if many:
            ratio = per(many[0], "loop") / per(f"{prefix}, no sink", "loop")
            verdict = "within" if ratio <= 2 else "NOT within"
            print(f"{many[0]}: loop {ratio:.2f}x no sink ({verdict} the 2x target)")


if __name__ == "__main__":
    main()
