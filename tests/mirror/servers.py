"""Real servers for the mirror tests: a free port, and ``mlflow server`` on 127.0.0.1.

Each server is started by a test module once, waited for with a deadline and stopped (terminate,
then kill) however the module ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["free_port", "mlflow_server", "stop_process", "wait_for_http"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until ``url`` answers (any HTTP status), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"server for {url} exited with {process.returncode} before answering"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s ({last})")


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 5.0) -> None:
    """Stop a server started in its own process group: SIGTERM, then SIGKILL after ``grace``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=grace)


def start_mlflow_server(
    root: Path, *, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``mlflow server`` with a sqlite backend (``root/mlflow.db``) and file artifacts
    (``root/artifacts``); return it and its URL."""
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        # plain file URIs: a client of the sqlite store reaches the same artifacts
        "--default-artifact-root",
        (root / "artifacts").as_uri(),
        "--no-serve-artifacts",
    ]
    log = open(root / "server.log", "ab")  # noqa: SIM115 - kept open for the server's lifetime
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        # minutes on a loaded machine (imports, database migrations), seconds on an idle one
        wait_for_http(f"{url}/health", timeout=240, process=process)
    except BaseException:
        stop_process(process)
        raise
    return process, url


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """A real ``mlflow server`` on a free port for the block; yields its URL."""
    process, url = start_mlflow_server(root)
    try:
        yield url
    finally:
        stop_process(process)
