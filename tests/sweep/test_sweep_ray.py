"""The Ray executor against a real Ray head started by this module on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import run_cli
from .cluster_helpers import make_project, read_runs

# not importorskip: importing ray takes seconds, and collection should not pay them
if importlib.util.find_spec("ray") is None:
    pytest.skip("ray is not installed: pip install 'replicator[ray]'", allow_module_level=True)

CONFIG = "lr: 0.1\nsteps: 3\nstep_sleep: 0\n"
START_TIMEOUT_S = 90.0
START_TRIES = 2
STOP_TIMEOUT_S = 15.0
# no token file in the home folder, no usage report
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(none)"


def _stop(head: subprocess.Popen[bytes], temp_dir: str) -> None:
    """Stop this module's Ray processes only (`ray stop` would stop every Ray on the machine):
    the blocking `ray start` and whatever was started under its temp folder."""
    import psutil  # a dependency of ray

    ours = [head.pid]
    try:
        ours += [p.pid for p in psutil.Process(head.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if temp_dir in " ".join(proc.info["cmdline"] or ()):
            ours.append(proc.info["pid"])
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops its processes
        try:
            head.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
    for pid in set(ours):
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    shutil.rmtree(temp_dir, ignore_errors=True)


def _start_head() -> tuple[subprocess.Popen[bytes], str, int, str | None]:
    """One try at a head: the process, its temp folder, its port and why it is not up."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # unix socket paths must stay short
    port = _free_port()
    log = Path(temp_dir) / "ray-start.log"
    ports = {
        "--port": port,
        "--ray-client-server-port": _free_port(),
        "--dashboard-agent-listen-port": _free_port(),
        "--dashboard-agent-grpc-port": _free_port(),
        "--metrics-export-port": _free_port(),
        "--runtime-env-agent-port": _free_port(),
    }
    argv = [
        str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
        "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false",
        "--disable-usage-stats", "--temp-dir", temp_dir,
        *[part for option, value in ports.items() for part in (option, str(value))],
    ]  # fmt: skip
    # the workers' `python` is this interpreter, as the tests' commands expect
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with log.open("wb") as out:
        head = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **RAY_ENV, "PATH": path}
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while b"Ray runtime started" not in log.read_bytes():
        if head.poll() is not None or time.monotonic() > deadline:
            why = "exited" if head.poll() is not None else f"not up after {START_TIMEOUT_S:.0f} s"
            raylet = Path(temp_dir) / "session_latest" / "logs" / "raylet.out"
            failed = [line for line in _tail(raylet, 200).splitlines() if "Check failed" in line]
            return head, temp_dir, port, f"Ray head {why}:\n{_tail(log, 3)}\n{''.join(failed)}"
        time.sleep(0.2)
    return head, temp_dir, port, None


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """The GCS address of a one-node Ray head on 127.0.0.1 (2 CPUs); skipped with the reason
    and the head's log when two tries do not start it (on a loaded machine its raylet gives up
    when the dashboard agent starts too slowly)."""
    for attempt in range(START_TRIES):
        head, temp_dir, port, failure = _start_head()
        if failure is None:
            break
        _stop(head, temp_dir)
        if attempt == START_TRIES - 1:
            pytest.skip(f"{failure}\n(tried {START_TRIES} times)")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _stop(head, temp_dir)


def test_a_grid_runs_as_ray_tasks_each_job_its_own_run(repo: Path, ray_head: str) -> None:
    store = make_project(repo, CONFIG)
    result = run_cli(
        "sweep", "-c", "cfg.yaml", "--executor", "ray", "--ray-address", ray_head,
        "--cpus", "1", "--set", "lr=0.1,0.01", "--", "python", "train.py",
        env=RAY_ENV, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 completed" in result.stderr
    runs = read_runs(store)
    assert len(runs) == 2 and all(r["status"] == "completed" for r in runs)
    (record_path,) = store.glob("experiments/cfg/sweeps/*.json")
    assert {r["seeding"]["sweep"] for r in runs} == {record_path.stem}
    assert sorted(r["seeding"]["index"] for r in runs) == [0, 1]
    assert sorted(float(r["config"]["lr"]) for r in runs) == [0.01, 0.1]


def test_unreachable_ray_is_refused_before_anything_is_submitted(repo: Path) -> None:
    store = make_project(repo, CONFIG)
    nobody = f"127.0.0.1:{_free_port()}"
    result = run_cli(
        "sweep", "-c", "cfg.yaml", "--executor", "ray", "--ray-address", nobody,
        "--set", "lr=0.1,0.01", "--", "python", "train.py",
        env=RAY_ENV, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"Ray is not reachable at {nobody}: cannot connect" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (store / "runs").exists() or not list((store / "runs").iterdir())
    assert not list(store.glob("experiments/*/sweeps/*.json"))
