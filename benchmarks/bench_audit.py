"""Benchmark for `replicator audit`: its time against one recorded run of the same command, and
what torch's deterministic mode costs.

Run:  .venv/bin/python benchmarks/bench_audit.py [--repeats 3] [--steps 200] [--skip-audit |
      --skip-torch]

Part 1, command against command, in a temporary git repository, median of ``--repeats``,
alternated: ``python script.py`` alone, ``replicator run -- python script.py`` (one recorded
run), ``replicator audit -- python script.py``; for a script whose runs agree (a seeded numpy
generator: the audit varies each factor once) and one whose runs differ (a seed from the clock:
the audit pins, checks the pinned pair and releases each factor).

Part 2, library against library: one training step loop (a small conv net and a matmul, forward
and backward) with torch's defaults against ``torch.use_deterministic_algorithms(True)`` with
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` and cuDNN deterministic, each in a fresh interpreter, median
of ``--repeats``; on CUDA when there is a device, on the CPU always.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AGREE = """\
import numpy as np
rng = np.random.default_rng(1234)
for step in range(5):
    print(f"step {step} | loss {float(rng.normal())!r}")
"""
DIFFER = """\
import random, time
rng = random.Random(time.time_ns())
for step in range(5):
    print(f"step {step} | loss {rng.random()!r}")
"""
PATTERN = r"step (?P<step>\d+) \| loss (?P<loss>\S+)"

LOOP = """\
import os, sys, time
import torch
device, deterministic, steps = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
if deterministic:
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1),
    torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10),
).to(device)
opt = torch.optim.SGD(net.parameters(), lr=0.01)
x = torch.randn(64, 3, 32, 32, device=device)
y = torch.randint(0, 10, (64,), device=device)
w = torch.randn(1024, 1024, device=device)
def step():
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(x), y) + (x.flatten(1)[:, :1024] @ w).mean()
    loss.backward()
    opt.step()
for _ in range(5):
    step()
if device == "cuda":
    torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(steps):
    step()
if device == "cuda":
    torch.cuda.synchronize()
print(time.perf_counter() - t)
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _timed(cmd: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    return _timed_output(cmd, cwd, env, ok)[0]


def _timed_output(
    cmd: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)
) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr}")
    return elapsed, proc.stdout


def part1(repeats: int) -> None:
    print("1. replicator audit against one run (wall seconds, median of", repeats, ")")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "project"
        repo.mkdir()
        (repo / "agree.py").write_text(AGREE)
        (repo / "differ.py").write_text(DIFFER)
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _git(repo, "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "scripts")
        env = {**os.environ, "REPLICATOR_STORE": str(Path(tmp) / "store")}
        cli = [sys.executable, "-m", "replicator"]
        # the exit code each audit must give: 0 when the runs agree, 1 when they differ; any
        # other (a crash, or a verdict that flipped) raises instead of being timed
        for script, verdict in (("agree.py", 0), ("differ.py", 1)):
            times: dict[str, list[float]] = {"python": [], "run": [], "audit": []}
            for _ in range(repeats):
                times["python"].append(_timed([sys.executable, script], repo, env))
                times["run"].append(_timed([*cli, "run", "--", sys.executable, script], repo, env))
                seconds, report = _timed_output(
                    [*cli, "audit", "--metric-pattern", PATTERN, "--", sys.executable, script],
                    repo,
                    env,
                    ok=(verdict,),
                )
                times["audit"].append(seconds)
                runs = re.search(r"(\d+) runs, ", report)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"   {script:<10} python {med['python']:.2f} s | replicator run {med['run']:.2f} s"
                f" | replicator audit ({runs[1] if runs else '?'} runs) {med['audit']:.2f} s"
                f" = {med['audit'] / med['run']:.1f}x one recorded run"
            )


def part2(repeats: int, steps: int) -> None:
    try:
        import torch
    except ImportError:
        print("2. deterministic mode: torch is not installed, skipped")
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"2. torch deterministic mode, {steps} training steps (seconds, median of {repeats})")
    with tempfile.TemporaryDirectory() as tmp:
        loop = Path(tmp) / "loop.py"
        loop.write_text(LOOP)
        for device in devices:
            times: dict[str, list[float]] = {"0": [], "1": []}
            for _ in range(repeats):
                for mode in ("0", "1"):
                    env = dict(os.environ)
                    if mode == "1":
                        env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
                    out = subprocess.run(
                        [sys.executable, str(loop), device, mode, str(steps)],
                        env=env, capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    times[mode].append(float(out.stdout.strip().splitlines()[-1]))
            default, det = statistics.median(times["0"]), statistics.median(times["1"])
            name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
            print(
                f"   {name:<24} default {default:.3f} s | deterministic {det:.3f} s "
                f"({det / default:.2f}x)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--skip-audit", action="store_true", help="Part 2 only.")
    parser.add_argument("--skip-torch", action="store_true", help="Part 1 only.")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    if not args.skip_audit:
        part1(args.repeats)
    if not args.skip_torch:
        part2(args.repeats, args.steps)


if __name__ == "__main__":
    main()
