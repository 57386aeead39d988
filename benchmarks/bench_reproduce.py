"""Benchmark for `replicator reproduce`: fresh-environment build time (uv vs venv + pip) and the
overhead of reproduce beyond the environment build and the command itself.

Run:  .venv/bin/python benchmarks/bench_reproduce.py [--repeats 2] [--small | --medium]
      [--only-build | --only-overhead]

Part 1 builds the demo's package set (omegaconf, pyyaml, click, rich, numpy, blake3,
scikit-learn, pinned to the versions in this interpreter) five ways, alternated, caches warm (one
warm-up build each first), median of ``--repeats``: the same work on both sides, once with
byte-compilation (uv ``--compile-bytecode`` against pip's default) and once without (uv's default,
which is what ``reproduce --env fresh`` runs, against pip ``--no-compile``). pip runs in an
environment made by ``python -m venv`` (which installs pip into it) and, without compilation,
also in its leanest way: ``venv --without-pip`` filled by this interpreter's ``pip --python``.
Part 2 records a small numpy experiment in a temporary git repository and reproduces it with
`--env fresh` and `--env current`; overhead = total - environment build - the command run alone.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "reproduce"))

DEMO = ["omegaconf", "pyyaml", "click", "rich", "numpy", "blake3", "scikit-learn"]
# Without scikit-learn (and so scipy): a quarter of the build time, for a loaded machine.
MEDIUM = ["omegaconf", "pyyaml", "click", "rich", "numpy", "blake3"]
SMALL = ["numpy"]


def _pins(names: list[str]) -> str:
    return "\n".join(f"{n}=={version(n)}" for n in names) + "\n"


def _run_checked(cmd: list[str], **kwargs: object) -> None:
    """Run ``cmd``; a failing command raises with its output (never timed as a success)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )


def _timed(cmds: list[list[str]]) -> float:
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
    }
    started = time.perf_counter()
    for cmd in cmds:
        _run_checked(cmd, env=env)
    return time.perf_counter() - started


def _timed_in(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    _run_checked(cmd, cwd=cwd, env=env)
    return time.perf_counter() - started


# Two pairings that do the same work on both sides. pip byte-compiles every installed module by
# default and uv does not (uv's --compile-bytecode does); `python -m venv` also installs pip
# itself, which is part of what the user pays for a pip-built environment.
TOOLS = {
    "uv, compiled": "uv venv + uv pip install --compile-bytecode",
    "pip, compiled": "python -m venv + pip install (compiles by default)",
    "uv, not compiled": "uv venv + uv pip install (what reproduce runs)",
    "pip, not compiled": "python -m venv + pip install --no-compile",
    # pip's leanest way: an environment without pip of its own, filled by this interpreter's pip
    # (`pip --python`, pip >= 22.3), so that the build does not pay for installing pip itself
    "pip lean, not compiled": "python -m venv --without-pip + pip --python install --no-compile",
}
PAIRS = (
    ("uv, compiled", "pip, compiled"),
    ("uv, not compiled", "pip, not compiled"),
    ("uv, not compiled", "pip lean, not compiled"),
)


def _build_commands(tool: str, dest: Path, req: Path, uv: str, base: str) -> list[list[str]]:
    python = str(dest / "bin/python")
    if tool.startswith("uv"):
        install = [uv, "pip", "install", "-q", "--python", python, "-r", str(req)]
        if tool == "uv, compiled":
            install.append("--compile-bytecode")
        return [[uv, "venv", "-q", "--python", base, str(dest)], install]
    if tool == "pip lean, not compiled":
        pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile"]
        return [[base, "-m", "venv", "--without-pip", str(dest)], [*pip, "-r", str(req)]]
    install = [python, "-m", "pip", "install", "-q", "-r", str(req)]
    if tool == "pip, not compiled":
        install.append("--no-compile")
    return [[base, "-m", "venv", str(dest)], install]


def bench_env_build(names: list[str], repeats: int) -> dict[str, list[float]]:
    from replicator.reproduce import find_uv

    uv = find_uv()
    assert uv, "uv is needed for the benchmark (pip install uv)"
    base = getattr(sys, "_base_executable", sys.executable)
    times: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(_pins(names))
        for i in range(repeats + 1):  # the first build of each warms the caches
            for tool in times:  # alternated, so load changes hit every tool alike
                dest = Path(tmp) / f"{tool.replace(', ', '-')}-{i}"
                seconds = _timed(_build_commands(tool, dest, req, uv, base))
                shutil.rmtree(dest)
                if i > 0:
                    times[tool].append(seconds)
                print(f"  {tool:22s} build {i}: {seconds:6.2f} s{'  (warm-up)' if i == 0 else ''}")
    return times


def bench_overhead(repeats: int) -> dict[str, list[float]]:
    from repro_helpers import TRAIN, git, make_venv

    from replicator.record.launch import RunSpec, launch
    from replicator.reproduce import reproduce
    from replicator.store import Store

    out: dict[str, list[float]] = {
        k: []
        for k in (
            "fresh total",
            "env build",
            "command alone",
            "fresh overhead",
            "current total",
            "current overhead",
        )
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        for k, v in {
            "GIT_AUTHOR_NAME": "b",
            "GIT_AUTHOR_EMAIL": "b@x",
            "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@x",
        }.items():
            os.environ[k] = v
        git(root, "init", "-q", "-b", "main")
        (root / ".gitignore").write_text("out/\n")
        (root / "train.py").write_text(TRAIN)
        (root / "helper.py").write_text("SCALE = 1.5\n")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "x")
        os.environ["REPLICATOR_STORE"] = str(Path(tmp) / "store")
        python = make_venv(Path(tmp) / "recording")
        os.chdir(root)
        store = Store.open()
        (result,) = launch(
            RunSpec(command=(str(python), "train.py"), seed=1),
            store=store,
            stdout=io.BytesIO(),
            stderr=io.BytesIO(),
        )
        for _ in range(repeats):
            started = time.perf_counter()
            rep = reproduce(
                result.run_id, env="fresh", keep=True, stdout=io.BytesIO(), stderr=io.BytesIO()
            )
            total = time.perf_counter() - started
            assert rep.reproduced, rep.as_dict()
            env_s = next(s.seconds for s in rep.stages if s.name == "environment")
            kept = rep.kept[0]
            assert rep.run_dir is not None, rep.as_dict()
            # the command as launch() runs it: joined to a run (a scratch copy), seed in its env
            scratch = Path(tmp) / "scratch-run"
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(rep.run_dir, scratch)
            child_env = {
                **os.environ,
                "PYTHONHASHSEED": "1",
                "REPLICATOR_SEED": "1",
                "REPLICATOR_RUN_DIR": str(scratch),
                "REPLICATOR_RUN_ID": scratch.name,
            }
            alone = statistics.median(
                _timed_in(
                    [str(kept / "venv/bin/python"), "train.py"], cwd=kept / "code", env=child_env
                )
                for _ in range(3)
            )
            _run_checked(["git", "worktree", "remove", "--force", str(kept / "code")], cwd=root)
            started = time.perf_counter()
            cur = reproduce(result.run_id, env="current", stdout=io.BytesIO(), stderr=io.BytesIO())
            current = time.perf_counter() - started
            assert cur.reproduced
            for key, value in (
                ("fresh total", total),
                ("env build", env_s),
                ("command alone", alone),
                ("fresh overhead", total - env_s - alone),
                ("current total", current),
                ("current overhead", current - alone),
            ):
                out[key].append(value)
            stages = ", ".join(f"{s.name} {s.seconds:.2f}" for s in rep.stages)
            print(
                f"  fresh {total:.2f} s (env {env_s:.2f}, command alone {alone:.2f}; stages: {stages}); current {current:.2f} s"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="numpy only (slow downloads)")
    parser.add_argument("--medium", action="store_true", help="the demo set without scikit-learn")
    parser.add_argument("--only-overhead", action="store_true", help="skip part 1")
    parser.add_argument("--only-build", action="store_true", help="skip part 2")
    args = parser.parse_args()
    names = SMALL if args.small else MEDIUM if args.medium else DEMO
    if not args.only_overhead:
        print(f"Part 1: fresh environment for {', '.join(names)} (+ dependencies), caches warm")
        builds = bench_env_build(names, args.repeats)
        med = {tool: statistics.median(v) for tool, v in builds.items()}
        print(f"\n| tool | median s (n={args.repeats}) |\n|---|---:|")
        for tool, label in TOOLS.items():
            print(f"| {label} | {med[tool]:.2f} |")
        for uv_side, pip_side in PAIRS:
            print(f"ratio {pip_side} / {uv_side}: {med[pip_side] / med[uv_side]:.1f}x")
        print(
            f"(not the same work) pip, compiled / uv, not compiled: {med['pip, compiled'] / med['uv, not compiled']:.1f}x\n"
        )
    if args.only_build:
        return
    print("Part 2: reproduce overhead (numpy experiment, 12 steps)")
    over = bench_overhead(max(3, args.repeats))
    print(f"\n| quantity | median s (n={len(over['fresh total'])}) |\n|---|---|")
    for key, values in over.items():
        print(f"| {key} | {statistics.median(values):.2f} |")


if __name__ == "__main__":
    main()
