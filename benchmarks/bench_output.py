"""Output copying: a command on its own vs the same command under `replicator run`.

`replicator run` copies the child's stdout and stderr to the terminal and, secrets removed, to
stdout.log and stderr.log. Three outputs that once made it slow (issue 12 item 13):

  (a) one 50 MB line without a line end until the last byte,
  (b) a tqdm-style progress bar: 200,000 updates redrawn with \\r, each flushed,
  (c) 1,000,000 ordinary short lines.

Each command runs as a whole process, bare, piped to `tee FILE` (the plain copy to a file,
without secrets removed; under `pipefail`, so a failing command is not hidden behind tee's exit
code) and as `replicator run -- <command>`, in turn, `--repeat` times (5 by default); the medians
are compared. All write the terminal's copy to /dev/null. `python -c pass` (EMPTY) is timed the
same way, in the same rounds as the outputs: under `replicator run` it gives the fixed cost of a
run (code snapshot, environment and hardware capture, run.json, all done before the child
starts), paid once per run whatever the command prints, so that the copy's own overhead can be
read apart from it:

    fixed = replicator run EMPTY - EMPTY;  copy overhead = (replicator run CMD - fixed) / CMD

"whole vs tee" sets the whole `replicator run` command, fixed cost included, against
`command | tee FILE`: what the user pays for either way of keeping the output.

The same is given for CPU seconds (user + system of the command and all it waited for), which
other jobs on a shared machine disturb far less than wall-clock time.

Run: .venv-bench/bin/python benchmarks/bench_output.py [--repeat 5]   (or .venv/bin/python)
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPEAT = 5

WORKLOADS = {
    "(a) one 50 MB line": """
import sys
sys.stdout.write("a" * 50_000_000 + "\\n")
""",
    "(b) \\r progress bar, 200,000 updates": """
import sys
write, flush = sys.stdout.write, sys.stdout.flush
total = 200_000
for i in range(1, total + 1):
    pct = i * 100 // total
    bar = "#" * (pct // 5)
    write(f"\\r{pct:3d}%|{bar:<20}| {i}/{total} [00:12<00:03, 16213.52it/s]")
    flush()
write("\\n")
""",
    "(c) 1,000,000 short lines": """
import sys
write = sys.stdout.write
for i in range(1_000_000):
    write(f"step {i} loss 0.{i % 1000:03d} lr 0.001\\n")
""",
}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, the process and all it waited for)."""
    cpu, start = _cpu(), time.perf_counter()
    subprocess.run(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - start, _cpu() - cpu


def _variants(command: list[str], log: Path) -> dict[str, list[str]]:
    """The bare command, it piped to `tee` (the plain copy to a file a user would otherwise
    make; pipefail, so the command's own exit code counts) and `replicator run -- command`."""
    tee = f"set -o pipefail; {shlex.join(command)} | tee {shlex.quote(str(log))} >/dev/null"
    return {
        "bare": command,
        "tee": ["bash", "-c", tee],
        "replicator": [sys.executable, "-m", "replicator", "run", "--", *command],
    }


def _rounds(
    commands: dict[str, list[str]], cwd: Path, env: dict[str, str], repeat: int
) -> dict[str, dict[str, Timing]]:
    """Medians per command and variant; each round runs every command's variants in turn."""
    log = cwd.parent / "tee.log"
    variants = {name: _variants(command, log) for name, command in commands.items()}
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {v: [] for v in argvs} for name, argvs in variants.items()
    }
    for _ in range(repeat):
        for name, argvs in variants.items():
            for v, argv in argvs.items():
                samples[name][v].append(_time(argv, cwd, env))
    return {
        name: {v: Timing.of(values) for v, values in by_variant.items()}
        for name, by_variant in samples.items()
    }


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float

    @classmethod
    def of(cls, samples: list[tuple[float, float]]) -> Timing:
        return cls(
            statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=REPEAT)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        for i, source in enumerate(WORKLOADS.values()):
            (project / f"w{i}.py").write_text(source)
        _git(project, "init", "-q", "-b", "main")
        _git(project, "add", "-A")
        _git(
            project, "-c", "user.name=bench", "-c", "user.email=b@example.com",
            "commit", "-q", "-m", "workloads",
        )  # fmt: skip
        env = {**os.environ, "REPLICATOR_STORE": str(Path(tmp) / "store")}
        env.pop("REPLICATOR_RUN_DIR", None)
        load = os.getloadavg()[0]
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.1f}")
        print(
            f"median of {repeat}; bare, | tee and `replicator run --` in turn, EMPTY and the "
            "outputs in the same rounds; output to /dev/null"
        )
        commands = {"EMPTY": [sys.executable, "-c", "pass"]}
        commands.update({name: [sys.executable, f"w{i}.py"] for i, name in enumerate(WORKLOADS)})
        results = _rounds(commands, project, env, repeat)
        empty = results.pop("EMPTY")
        fixed = Timing(
            empty["replicator"].wall - empty["bare"].wall,
            empty["replicator"].cpu - empty["bare"].cpu,
        )
        print(
            f"fixed cost of a run (EMPTY = python -c pass): {fixed.wall:.2f} s wall, "
            f"{fixed.cpu:.2f} s CPU\n"
        )
        for kind in ("wall", "cpu"):
            print(
                f"{kind + ' s':<38} {'bare':>6} {'| tee':>6} {'replicator':>10} {'ratio':>6}"
                f" {'- fixed':>8} {'vs tee':>7} {'whole vs tee':>13}"
            )
            for name, t in results.items():
                bare, tee, under = (getattr(t[k], kind) for k in ("bare", "tee", "replicator"))
                net = under - getattr(fixed, kind)
                print(
                    f"{name:<38} {bare:>6.2f} {tee:>6.2f} {under:>10.2f} {under / bare:>5.2f}x"
                    f" {net / bare:>7.2f}x {net / tee:>6.2f}x {under / tee:>12.2f}x"
                )
            print()
        print(
            "ratio: replicator run / bare command; - fixed: the same with the fixed cost of a run "
            "taken off (the copy's own overhead); vs tee: that against `command | tee FILE`; "
            "whole vs tee: the whole replicator run, fixed cost included, against | tee"
        )


if __name__ == "__main__":
    main()
