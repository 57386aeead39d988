"""The demo experiment, end to end: 3 seeds of a small digits MLP through `replicator run`,
then `replicator ls` and `replicator show` of one run. Used by `make demo`."""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REPLICATOR = [str(BIN / "replicator")]


def step(title: str, args: list[str]) -> None:
    print(f"\n$ replicator {' '.join(args)}", flush=True)
    code = subprocess.call([*REPLICATOR, *args], cwd=ROOT)
    if code != 0:
        sys.exit(f"demo: `replicator {' '.join(args)}` failed with exit code {code}")


def main() -> None:
    started = time.perf_counter()
    step(
        "train",
        [
            "run",
            "-c",
            "examples/digits/config.yaml",
            "--experiment",
            "digits",
            "--seeds",
            "3",
            "--",
            str(Path(sys.executable)),
            "examples/digits/train.py",
        ],
    )
    step("list", ["ls", "--experiment", "digits", "--limit", "3"])
    step("show", ["show", "last"])
    print(
        f"\ndemo finished in {time.perf_counter() - started:.1f} s; the runs are in {ROOT / '.replicator'}"
    )


if __name__ == "__main__":
    main()
