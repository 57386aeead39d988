"""The Visdom sink against a real Visdom server on 127.0.0.1, read back through the client API.

The server is visdom's own (``visdom.server.run_server.main``, what ``python -m visdom.server``
runs after it downloads the web page's scripts from CDNs; the download fails without internet
and is not needed by the API, so the tests start the server without it).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replicator.errors import MissingDependencyError, UsageError
from replicator.mirror.base import Point, RunInfo, make_sink

from ..conftest import git, run_cli
from .servers import free_port, stop_process, wait_for_http

pytest.importorskip("visdom")

CONFIG = {"model": {"width": 64}, "optim": {"lr": 0.01}}
TAGS = {"commit": "0123456789abcdef", "snapshot_ref": "refs/replicator/snapshots/r1", "seed": "7"}


def start_visdom(root: Path, port: int) -> subprocess.Popen[bytes]:
    """A Visdom server on 127.0.0.1:port keeping its envs under ``root``, answering HTTP."""
    root.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-c",
        "from visdom.server.run_server import main; main()",
        "-port",
        str(port),
        "-bind_local",
        "-env_path",
        str(root),
        "-logging_level",
        "WARNING",
    ]
    log = open(root / "server.log", "ab")  # noqa: SIM115 - kept open for the server's lifetime
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=30, process=process)
    except BaseException:
        stop_process(process)
        raise
    return process


@pytest.fixture(scope="module")
def visdom_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    process = start_visdom(tmp_path_factory.mktemp("visdom"), port)
    try:
        yield port
    finally:
        stop_process(process)


def run_info(tmp_path: Path, run_id: str = "r1") -> RunInfo:
    run_dir = tmp_path / "runs" / run_id
    run_dir.mkdir(parents=True)
    return RunInfo(run_id, "mnist", "wide-net", run_dir, CONFIG, TAGS, 1_700_000_000.0)


def window(port: int, env: str, win: str) -> dict[str, Any]:
    """A window's data as the server holds it, through the Visdom client API."""
    import visdom

    with warnings.catch_warnings():
        # visdom 0.2's client logs through the deprecated Logger.warn when it has no socket
        warnings.filterwarnings("ignore", r"The 'warn' method is deprecated", DeprecationWarning)
        client = visdom.Visdom(
            server="http://127.0.0.1",
            port=port,
            env=env,
            raise_exceptions=True,
            use_incoming_socket=False,
        )
    data: dict[str, Any] = json.loads(client.get_window_data(win=win, env=env))
    return data


def traces(port: int, env: str, win: str) -> dict[str, tuple[list[float], list[float]]]:
    content = window(port, env, win)["content"]
    return {trace["name"]: (trace["x"], trace["y"]) for trace in content["data"]}


def test_a_run_becomes_a_line_window_per_metric_and_text_windows(
    tmp_path: Path, visdom_port: int
) -> None:
    info = run_info(tmp_path)
    sink = make_sink("visdom", {"server": "http://127.0.0.1", "port": visdom_port})
    sink.check()
    sink.open(info)
    sink.send_metrics([Point("loss", 1.0 / (s + 1), s, 1_700_000_001.0 + s) for s in range(3)])
    sink.send_metrics(
        [Point("loss", 0.2, 4, 1_700_000_005.0), Point("acc", 0.5, 4, 1_700_000_005.0)]
    )
    sink.send_metrics([Point("lr", 0.1, None, 1.0), Point("lr", 0.05, None, 2.0)])
    sink.send_summary({"loss": 0.2, "acc": 0.5})
    sink.close("completed")

    env = "mnist_r1"
    assert sink.where() == f"http://127.0.0.1:{visdom_port}/env/{env}"
    assert traces(visdom_port, env, "loss") == {"r1": ([0, 1, 2, 4], [1.0, 0.5, 1 / 3, 0.2])}
    assert traces(visdom_port, env, "acc") == {"r1": ([4], [0.5])}
    assert traces(visdom_port, env, "lr") == {"r1": ([0, 1], [0.1, 0.05])}
    assert window(visdom_port, env, "loss")["title"] == "loss"
    config = window(visdom_port, env, "config:r1")
    assert config["type"] == "text"
    assert "&quot;lr&quot;: 0.01" in config["content"]
    assert "&quot;commit&quot;: &quot;0123456789abcdef&quot;" in config["content"]
    assert config["content"].endswith("status: completed")
    summary = window(visdom_port, env, "summary:r1")["content"]
    assert "&quot;acc&quot;: 0.5" in summary and "&quot;loss&quot;: 0.2" in summary


def test_runs_in_one_env_are_traces_of_the_same_windows(tmp_path: Path, visdom_port: int) -> None:
    for run_id, last in (("a1", 0.3), ("b2", 0.1)):
        sink = make_sink("visdom", {"server": "127.0.0.1", "port": visdom_port, "env": "sweep"})
        sink.open(run_info(tmp_path, run_id))
        sink.send_metrics([Point("loss", 1.0, 0, 1.0), Point("loss", last, 1, 2.0)])
        sink.close("completed")
    assert traces(visdom_port, "sweep", "loss") == {
        "a1": ([0, 1], [1.0, 0.3]),
        "b2": ([0, 1], [1.0, 0.1]),
    }


def test_a_resume_drops_the_runs_values_after_the_step(tmp_path: Path, visdom_port: int) -> None:
    sink = make_sink(
        "visdom", {"server": "http://127.0.0.1", "port": visdom_port, "env": "resumed"}
    )
    sink.open(run_info(tmp_path))
    sink.send_metrics([Point("loss", float(10 - s), s, float(s)) for s in range(5)])
    sink.send_metrics([Point("acc", 0.1, 3, 3.0), Point("acc", 0.2, 4, 4.0)])
    sink.send_resume(2)  # the run went on from its checkpoint at step 2
    assert traces(visdom_port, "resumed", "loss") == {"r1": ([0, 1, 2], [10.0, 9.0, 8.0])}
    sink.send_metrics([Point("loss", 7.5, 3, 5.0), Point("acc", 0.15, 3, 5.0)])
    sink.close("completed")
    assert traces(visdom_port, "resumed", "loss") == {"r1": ([0, 1, 2, 3], [10.0, 9.0, 8.0, 7.5])}
    assert traces(visdom_port, "resumed", "acc") == {"r1": ([3], [0.15])}


def test_a_server_that_is_down_raises_a_connection_error(tmp_path: Path) -> None:
    port = free_port()
    sink = make_sink("visdom", {"server": "http://127.0.0.1", "port": port, "timeout": 2})
    sink.check()
    sink.open(run_info(tmp_path))  # open never contacts the server
    with pytest.raises(ConnectionError, match=rf"Visdom server http://127.0.0.1:{port} refused"):
        sink.send_metrics([Point("loss", 1.0, 0, 1.0)])


def test_a_batch_retried_after_a_failure_half_way_is_not_appended_twice(
    tmp_path: Path, visdom_port: int
) -> None:
    sink = make_sink("visdom", {"server": "http://127.0.0.1", "port": visdom_port, "env": "half"})
    sink.open(run_info(tmp_path))
    sink.send_summary({"loss": 0.5})  # the text window summary:r1
    # a metric named like that text window: the server fails on it (HTTP 500), after "loss"
    batch = [
        Point("loss", 1.0, 0, 1.0),
        Point("summary:r1", 2.0, 0, 1.0),
        Point("loss", 0.5, 1, 2.0),
    ]
    for _ in range(2):  # the worker retries the same batch
        with pytest.raises(ConnectionError, match=r"answered HTTP 500 .*its log says why"):
            sink.send_metrics(batch)
    assert traces(visdom_port, "half", "loss") == {"r1": ([0, 1], [1.0, 0.5])}


def test_a_server_that_does_not_answer_times_out(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections are accepted by the kernel, never answered
        port = silent.getsockname()[1]
        sink = make_sink("visdom", {"server": "http://127.0.0.1", "port": port, "timeout": 0.5})
        sink.open(run_info(tmp_path))
        with pytest.raises(ConnectionError, match=r"did not answer within 0.5 s"):
            sink.send_metrics([Point("loss", 1.0, 0, 1.0)])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"password": "x"}, r"'password' looks like a credential.*VISDOM_PASSWORD"),
        ({"port": "8097"}, r"option 'port' must be an integer from 1 to 65535, got '8097'"),
        ({"port": 0}, r"option 'port' must be an integer from 1 to 65535, got 0"),
        ({"server": "http://localhost:8097"}, r"the port in the option 'port'"),
        ({"server": "ftp://host"}, r"option 'server' must be a URL such as http://localhost"),
        ({"timeout": -1}, r"option 'timeout' must be a number from 0.1 to 600, got -1"),
        ({"env": "a/b"}, r"option 'env' must be letters, digits, '_', '-' or '.'"),
        ({"host": "x"}, r"no option 'host'. Known options: server, port, env, timeout"),
    ],
)
def test_bad_options_are_refused_by_check(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make_sink("visdom", options).check()


def test_a_missing_visdom_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "visdom", None)  # import visdom now fails as if absent
    with pytest.raises(MissingDependencyError, match=r"pip install 'replicator\[visdom\]'"):
        make_sink("visdom", {}).check()


TRAIN = """\
import replicator
cfg = {"optim": {"lr": 0.1}, "epochs": 3}
with replicator.start(cfg) as run:
    for step in range(25):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 25}, step=step)
    run.summary["best_acc"] = 0.96
"""


def test_replicator_run_mirror_visdom_plots_the_run(repo: Path, visdom_port: int) -> None:
    (repo / "replicator.yaml").write_text(
        f"mirror:\n  visdom:\n    server: http://127.0.0.1\n    port: {visdom_port}\n"
    )
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add train.py")
    done = run_cli("run", "-e", "mlp", "--mirror", "visdom", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    assert "Setting up a new session" not in done.stdout + done.stderr
    (run_dir,) = (repo / ".replicator" / "runs").iterdir()
    state = json.loads((run_dir / "mirrors.json").read_text())["visdom"]
    env = f"mlp_{run_dir.name}"
    assert state["status"] == "ok" and state["sent_points"] == 50
    assert state["where"] == f"http://127.0.0.1:{visdom_port}/env/{env}"
    assert traces(visdom_port, env, "loss") == {
        run_dir.name: (list(range(25)), [1.0 / (step + 1) for step in range(25)])
    }
    assert traces(visdom_port, env, "acc")[run_dir.name][1] == [step / 25 for step in range(25)]
    config = window(visdom_port, env, f"config:{run_dir.name}")["content"]
    assert f"&quot;commit&quot;: &quot;{git(repo, 'rev-parse', 'HEAD')}&quot;" in config
    assert config.endswith("status: completed")
    summary = window(visdom_port, env, f"summary:{run_dir.name}")["content"]
    assert "&quot;best_acc&quot;: 0.96" in summary


def test_a_visdom_server_down_during_the_run_gets_the_run_from_replicator_mirror(
    repo: Path, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there while the run is recorded
    (repo / "replicator.yaml").write_text(
        f"mirror:\n  visdom:\n    server: http://127.0.0.1\n    port: {port}\n    timeout: 1\n"
    )
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add train.py")
    done = run_cli("run", "-e", "mlp", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr  # the run itself is complete
    assert f"Visdom server http://127.0.0.1:{port} refused" in done.stderr
    (run_dir,) = (repo / ".replicator" / "runs").iterdir()
    state = json.loads((run_dir / "mirrors.json").read_text())["visdom"]
    assert state["status"] in ("gap", "failed") and state["sent_points"] == 0

    process = start_visdom(tmp_path / "late-server", port)
    try:
        filled = run_cli("mirror", run_dir.name, "--to", "visdom")
        env = f"mlp_{run_dir.name}"
        assert filled.returncode == 0, filled.stderr
        assert filled.stdout.strip() == (
            f"visdom: ok, 50 points -> http://127.0.0.1:{port}/env/{env}"
        )
        assert traces(port, env, "loss") == {
            run_dir.name: (list(range(25)), [1.0 / (step + 1) for step in range(25)])
        }
        assert window(port, env, f"config:{run_dir.name}")["content"].endswith("status: completed")
    finally:
        stop_process(process)
