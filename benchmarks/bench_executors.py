"""Per-job overhead of the Slurm and Ray sweep executors over submitting the same command with
submitit / ``ray.remote`` directly (library vs library, same jobs, same cluster, same run).

Every job runs the same command, ``python -c pass``, as a child process:

- Slurm, replicator: ``SlurmExecutor(folder=...).run(jobs, on_change)``: one job array, each
  task a checkpointable submitit task that starts the command and returns its exit code; states
  from ``squeue`` and the result files, polled every 0.5 s.
- Slurm, submitit: ``AutoExecutor(cluster="slurm").map_array(run_command, argvs)`` (one job
  array of a function that runs the command with ``subprocess.run``), waited for by polling
  ``job.done()`` every 0.5 s (``job.result()`` polls every second: the faster way).
- Ray, replicator: ``RayExecutor(address=...).run(jobs, on_change)``: one streaming task per
  job (it reports "started", then the exit code).
- Ray, ``ray.remote``: ``ray.get([run_command.remote(argv) for ...])`` (one plain task per job).

The cluster is the one-node Slurm cluster of the tests (tests/sweep/slurm_cluster.py: munged,
slurmctld, slurmd on localhost; needs root and Debian's slurm packages) and a Ray instance
started in this process (``ray.init(num_cpus=2)``) or given with ``--ray-address``. Reported: the wall time of the whole batch
(median of ``--repeat``, sides alternated) and the overhead per job, ``(ours - peer) / jobs``.

Run: .venv/bin/python benchmarks/bench_executors.py [--jobs 8] [--repeat 3] [--only slurm|ray]
[--ray-address HOST:PORT] (a head started with ``ray start --head``, else one started here)
(.venv-bench has neither submitit nor ray)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replicator.sweep.executors.base import Job, JobResult, Resources  # noqa: E402

ARGV = (sys.executable, "-c", "pass")
POLL_S = 0.5


def run_command(argv: Sequence[str]) -> int:
    """The peer's task: the same command, as a child process."""
    return subprocess.run(list(argv), check=False).returncode


def _jobs(n: int, cwd: str) -> list[Job]:
    return [
        Job("bench", i, ARGV, cwd, {}, Resources(cpus=1, time_min=10, partition="debug"))
        for i in range(n)
    ]


def _check(results: list[JobResult]) -> None:
    bad = [r for r in results if r.state.value != "completed"]
    if bad:
        raise RuntimeError(f"jobs did not complete: {bad}")


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _alternate(sides: dict[str, Callable[[], None]], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeat):
        for name, fn in sides.items():
            times[name].append(_timed(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def bench_slurm(jobs: int, repeat: int, work: Path) -> dict[str, float]:
    import submitit
    from tests.sweep.slurm_cluster import running_cluster

    from replicator.sweep.executors.slurm import SlurmExecutor

    with running_cluster(work / "cluster"):
        counter = iter(range(1_000_000))

        def ours() -> None:
            executor = SlurmExecutor(folder=work / f"ours-{next(counter)}", poll_s=POLL_S)
            executor.check()
            _check(executor.run(_jobs(jobs, str(work)), lambda result: None))

        def peer() -> None:
            executor = submitit.AutoExecutor(folder=work / f"peer-{next(counter)}", cluster="slurm")
            executor.update_parameters(
                timeout_min=10, cpus_per_task=1, slurm_partition="debug", name="bench"
            )
            submitted = executor.map_array(run_command, [ARGV] * jobs)
            while not all(job.done() for job in submitted):
                time.sleep(POLL_S)
            codes = [job.result() for job in submitted]
            if any(codes):
                raise RuntimeError(f"peer jobs failed: {codes}")

        return _alternate({"replicator": ours, "submitit": peer}, repeat)


def bench_ray(jobs: int, repeat: int, work: Path, address: str | None = None) -> dict[str, float]:
    import ray

    from replicator.sweep.executors.ray import RayExecutor

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=tempfile.mkdtemp(prefix="rb", dir="/tmp"),
        )
    try:
        remote = ray.remote(num_cpus=1)(run_command)

        def ours() -> None:
            executor = RayExecutor(address="auto")
            _check(executor.run(_jobs(jobs, str(work)), lambda result: None))

        def peer() -> None:
            codes = ray.get([remote.remote(ARGV) for _ in range(jobs)])
            if any(codes):
                raise RuntimeError(f"peer tasks failed: {codes}")

        return _alternate({"replicator": ours, "ray.remote": peer}, repeat)
    finally:
        ray.shutdown()


def _report(name: str, medians: dict[str, float], jobs: int) -> None:
    (ours, peer), (peer_name, _) = medians.values(), list(medians.items())[1]
    print(
        f"{name}: {jobs} jobs, replicator {ours:.2f} s vs {peer_name} {peer:.2f} s "
        f"(median); overhead per job {(ours - peer) / jobs * 1000:+.0f} ms "
        f"({ours / jobs:.3f} s vs {peer / jobs:.3f} s per job)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["slurm", "ray"])
    parser.add_argument("--ray-address", help="a running Ray head (default: ray.init() here)")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        benches: list[tuple[str, Any]] = [("slurm", bench_slurm), ("ray", bench_ray)]
        for name, bench in benches:
            if args.only not in (None, name):
                continue
            try:
                (work / name).mkdir(parents=True)
                extra = [args.ray_address] if name == "ray" else []
                medians = bench(args.jobs, args.repeat, work / name, *extra)
            except Exception as exc:  # a cluster that cannot start here: say so, go on
                print(f"{name}: not measured: {type(exc).__name__}: {str(exc)[:600]}")
                continue
            _report(name, medians, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
