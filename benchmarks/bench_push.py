"""Push of many small runs to a local S3 server: `replicator push` vs `aws s3 sync` (command vs
command) and `replicator.remote.push` vs fsspec's `put(recursive=True)` (library vs library).

The same store on every side: one real recorded run copied to ``--runs`` run directories (run.json,
summary.json, status.jsonl, metrics.jsonl, config.yaml, hparams.csv, stdout.log each: 7 files).
The server is moto's (``moto_server -H 127.0.0.1 -p PORT``), in a process of its own.

- first push: into an empty bucket (a fresh one per repeat and side);
- second push: the same command again with nothing new (replicator lists ``done/`` once;
  ``aws s3 sync`` lists the destination and compares sizes and times; fsspec's ``put`` has no
  way to skip, so it uploads everything again).

``aws s3 sync`` runs in its default mode (10 concurrent requests, the CLI's recommended setting);
fsspec's ``put`` uploads concurrently (s3fs is async). Reported: the median wall time of
``--repeat`` rounds, sides alternated, and replicator's ratio to each peer.

Run: .venv/bin/python benchmarks/bench_push.py [--runs 1000] [--repeat 3]
(needs the s3 and test extras: s3fs and moto[server]; `aws` from pip's awscli on PATH, else that
column is left out)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PY = sys.executable
KEEP = (
    "run.json",
    "summary.json",
    "status.jsonl",
    "metrics.jsonl",
    "config.yaml",
    "hparams.csv",
    "stdout.log",
)
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
TRAIN = """\
import replicator
run = replicator.start()
for step in range(20):
    run.log({"loss": 1.0 / (step + 1), "acc": step / 20}, step=step)
print("done")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [str(Path(PY).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("moto_server did not start")


def make_project(root: Path, runs: int) -> Path:
    """A git project with one real run copied to ``runs`` small run directories."""
    project = root / "project"
    project.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com"}
    env |= {"GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=project, check=True, env=env)
    (project / "train.py").write_text(TRAIN)
    subprocess.run(
        [PY, "-m", "replicator", "run", "--", PY, "train.py"],
        cwd=project,
        check=True,
        env=env,
        capture_output=True,
    )
    runs_dir = project / ".replicator" / "runs"
    (first,) = list(runs_dir.iterdir())
    for i in range(runs):
        target = runs_dir / f"{first.name[:-4]}{i:04x}"
        target.mkdir(exist_ok=True)
        for name in KEEP:
            if (first / name).exists():
                shutil.copy2(first / name, target / name)
        meta = json.loads((target / "run.json").read_text())
        meta["id"] = target.name
        (target / "run.json").write_text(json.dumps(meta))
    if first.name not in {f"{first.name[:-4]}{i:04x}" for i in range(runs)}:
        shutil.rmtree(first)
    return project


Side = Callable[[str], Callable[[], None]]


def make_sides(
    project: Path, endpoint: str, env: dict[str, str], aws: str | None
) -> list[tuple[str, Side]]:
    """Each side: given a fresh bucket, the call that pushes the store into it."""
    import fsspec

    runs_dir = project / ".replicator" / "runs"

    def name_remote(bucket: str) -> None:
        (project / "replicator.yaml").write_text(
            f"remotes:\n  bench:\n    url: s3://{bucket}/r\n"
            f"    storage_options:\n      endpoint_url: {endpoint}\n"
        )

    def replicator_cmd(bucket: str) -> Callable[[], None]:
        name_remote(bucket)
        return command([PY, "-m", "replicator", "push", "bench"], project, env)

    def replicator_lib(bucket: str) -> Callable[[], None]:
        from replicator.remote import push

        name_remote(bucket)

        def run() -> None:
            push("bench", store=project / ".replicator")

        return run

    def aws_sync(bucket: str) -> Callable[[], None]:
        assert aws is not None
        target = f"s3://{bucket}/r/runs"
        sync = [aws, "s3", "sync", "--quiet", "--endpoint-url", endpoint, str(runs_dir), target]
        return command(sync, project, env)

    def fsspec_put(bucket: str) -> Callable[[], None]:
        def run() -> None:
            fs = fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)
            fs.put(str(runs_dir), f"{bucket}/r/runs", recursive=True)

        return run

    sides: list[tuple[str, Side]] = [("replicator push (command)", replicator_cmd)]
    if aws:
        sides.append(("aws s3 sync (command)", aws_sync))
    sides += [
        ("replicator.remote.push (library)", replicator_lib),
        ("fsspec put(recursive=True) (library)", fsspec_put),
    ]
    return sides


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def command(args: list[str], cwd: Path, env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import boto3  # moto's dependency: creates the buckets

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, **AWS_ENV}
    os.environ.update(AWS_ENV)
    server = start_server(port)
    aws = shutil.which("aws")
    if aws is not None and subprocess.run([aws, "--version"], capture_output=True).returncode:
        aws = None
    times: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
            project = make_project(Path(tmp), args.runs)
            client = boto3.client("s3", endpoint_url=endpoint)
            sides = make_sides(project, endpoint, env, aws)
            for round_ in range(args.repeat):
                order = sides if round_ % 2 == 0 else list(reversed(sides))
                for name, make in order:
                    bucket = f"bench-{round_}-{abs(hash(name)) % 10**8}"
                    client.create_bucket(Bucket=bucket)
                    run = make(bucket)
                    times.setdefault(f"{name}: first", []).append(timed(run))
                    times.setdefault(f"{name}: second", []).append(timed(run))
                print(f"round {round_ + 1}/{args.repeat} done", file=sys.stderr)
    finally:
        server.kill()
        server.wait()
    load = os.getloadavg()[0]
    print(f"\n{args.runs} runs x {len(KEEP)} files, median of {args.repeat}, load {load:.1f}")
    medians = {k: statistics.median(v) for k, v in times.items()}
    for key, value in medians.items():
        print(f"  {key:<48} {value:8.2f} s")
    for which in ("first", "second"):
        ours = medians[f"replicator push (command): {which}"]
        for peer in ("aws s3 sync (command)",):
            if f"{peer}: {which}" in medians:
                print(
                    f"  {which}: replicator push / {peer} = {ours / medians[f'{peer}: {which}']:.2f}"
                )
        lib = medians[f"replicator.remote.push (library): {which}"]
        put = medians[f"fsspec put(recursive=True) (library): {which}"]
        print(f"  {which}: replicator.remote.push / fsspec put = {lib / put:.2f}")


if __name__ == "__main__":
    main()
