"""Run every benchmark in this folder, one after another (each compares against its peer).

Each script is run with its defaults and its exit code is checked: a benchmark that fails is
reported as failed, never as a figure. The command and the wall time of each are printed, so
that every table in the output can be traced to the command that produced it.
"""

import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        cmd = [sys.executable, str(script.relative_to(HERE.parent))]
        print(f"\n===== {script.name}: $ {shlex.join(cmd)} =====", flush=True)
        started = time.perf_counter()
        code = subprocess.call(cmd, cwd=HERE.parent)
        print(f"===== {script.name}: exit {code} after {time.perf_counter() - started:.0f} s =====")
        if code != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
