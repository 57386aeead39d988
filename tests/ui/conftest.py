"""Fixtures of the UI tests: a small store made by real `replicator run`s, and the real server.

``ui_store`` (one per session) is a git project whose store holds, in experiment ``ui``: two
configs (``a``: lr 0.1, ``b``: lr 0.01) with two seeds each, a failed run, a run whose recorded
command had a secret (``--api-key``, redacted when recorded), a run still running (its script
waits for a file the fixture writes at the end), a run whose run.json is not JSON and one whose
run.json has a field of the wrong type. Every run is made by the real CLI in a real git repo;
runs of config ``b`` ran with an uncommitted change to train.py (so they have a patch) and save a
checkpoint every 10 steps.

``ui_server`` (one per session) is ``replicator ui --port 0 --store ...`` in a subprocess on
127.0.0.1; :func:`start_ui` starts another with other options (a token, another host).
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..conftest import BIN, GIT_IDENTITY

SECRET = "hunter2-very-secret-api-key-4f7c"
TRAIN = """\
import os, sys, time
import replicator

run = replicator.start()
config = dict(run.config or {})
lr = float(config.get("lr", 0.1))
steps = int(config.get("steps", 30))
for i in range(steps):
    loss = 1.0 / (1 + lr * 10 * i) + run.seed % 7 * 0.001
    run.log({"loss": loss, "acc": i / steps}, step=i)
    if os.environ.get("UI_TEST_CKPT") and i % 10 == 9:
        run.checkpoint({"w": [float(i)] * 4}, step=i, metrics={"loss": loss})
print("trained", steps, "steps")
print("a warning line", file=sys.stderr)
hold = os.environ.get("UI_TEST_HOLD")
if hold:
    run.flush()
    deadline = time.monotonic() + 600
    while not os.path.exists(hold) and time.monotonic() < deadline:
        time.sleep(0.05)
if os.environ.get("UI_TEST_FAIL"):
    sys.exit(3)
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a child: no REPLICATOR_* variable of the caller, a git identity, this
    interpreter first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATOR_")}
    env.update(GIT_IDENTITY)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env.update(extra)
    return env


@dataclass
class UiStore:
    """The store of the UI tests and the ids of its runs by role."""

    project: Path
    store: Path
    ids: dict[str, list[str]] = field(default_factory=dict)
    running: subprocess.Popen[str] | None = None
    release: Path | None = None

    def one(self, role: str) -> str:
        return self.ids[role][0]

    @property
    def completed(self) -> list[str]:
        return [*self.ids["a"], *self.ids["b"], *self.ids["secret"]]


def replicator(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "replicator", *args],
        cwd=cwd,
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _new_runs(store: Path, before: set[str]) -> list[str]:
    return sorted(p.name for p in (store / "runs").iterdir() if p.name not in before)


def _finish(proc: subprocess.Popen[str], what: str, codes: tuple[int, ...] = (0,)) -> None:
    out, _ = proc.communicate(timeout=180)
    if proc.returncode not in codes:
        raise AssertionError(f"{what} exited {proc.returncode}:\n{out}")


def make_ui_store(root: Path) -> UiStore:
    """Make the project and its runs (see the module docstring); the running run is left
    running: call :func:`release_running` to let it end."""
    project = root / "project"
    project.mkdir()
    env = clean_env()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True, env=env)
    (project / "train.py").write_text(TRAIN)
    (project / ".gitignore").write_text("*.log\n")
    (project / "configs").mkdir()
    (project / "configs" / "a.yaml").write_text("lr: 0.1\nsteps: 30\n")
    (project / "configs" / "b.yaml").write_text("lr: 0.01\nsteps: 30\n")
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "initial"], cwd=project, check=True, env=env)
    store = project / ".replicator"
    ui = UiStore(project=project, store=store)
    common = ("-e", "ui")
    train = ("--", "python", "train.py")

    def runs(*args: str, codes: tuple[int, ...] = (0,), **env: str) -> list[str]:
        folder = store / "runs"
        before = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        proc = replicator("run", *common, *args, *train, cwd=project, env=clean_env(**env))
        _finish(proc, str(args), codes)
        return _new_runs(store, before)

    ui.ids["a"] = runs("-c", "configs/a.yaml", "--seeds", "2")
    ui.ids["failed"] = runs("-c", "configs/a.yaml", "--seed", "7", codes=(3,), UI_TEST_FAIL="1")
    before = {p.name for p in (store / "runs").iterdir()}
    proc = replicator(
        "run",
        *common,
        "-c",
        "configs/a.yaml",
        "--seed",
        "8",
        *train,
        "--api-key",
        SECRET,
        cwd=project,
    )
    _finish(proc, "the run with a secret")
    ui.ids["secret"] = _new_runs(store, before)
    # config b runs with an uncommitted change: its runs record a patch of train.py
    (project / "train.py").write_text(TRAIN + "# tuned for config b\n")
    ui.ids["b"] = runs("-c", "configs/b.yaml", "--seeds", "2", UI_TEST_CKPT="1")
    (project / "train.py").write_text(TRAIN)
    # damaged copies of a completed run
    source = store / "runs" / ui.ids["a"][0]
    not_json = store / "runs" / "20000101-000000-dead"
    shutil.copytree(source, not_json)
    (not_json / "run.json").write_text('{"id": "20000101-000000-dead", "status": ')
    wrong_type = store / "runs" / "20000101-000001-beef"
    shutil.copytree(source, wrong_type)
    text = (wrong_type / "run.json").read_text()
    (wrong_type / "run.json").write_text(
        text.replace(f'"id": "{ui.ids["a"][0]}"', '"id": "20000101-000001-beef"').replace(
            '"started": ', '"started": "yesterday", "was_started": ', 1
        )
    )
    ui.ids["damaged"] = [not_json.name]
    ui.ids["damaged_field"] = [wrong_type.name]
    # a run left running until the fixture ends
    ui.release = root / "release-running"
    before = {p.name for p in (store / "runs").iterdir()}
    ui.running = replicator(
        "run",
        *common,
        "-c",
        "configs/a.yaml",
        "--seed",
        "9",
        *train,
        cwd=project,
        env=clean_env(UI_TEST_HOLD=str(ui.release)),
    )
    deadline = time.monotonic() + 120
    while True:
        new = _new_runs(store, before)
        if new and (store / "runs" / new[0] / "metrics.jsonl").exists():
            lines = (store / "runs" / new[0] / "metrics.jsonl").read_text().count("\n")
            if lines >= 60:
                break
        if ui.running.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the running run did not start: {ui.running.communicate()[0]}")
        time.sleep(0.05)
    ui.ids["running"] = new
    return ui


def release_running(ui: UiStore) -> None:
    """Let the running run end, and wait for it."""
    if ui.running is None or ui.release is None:
        return
    ui.release.write_text("done")
    try:
        ui.running.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        ui.running.kill()
        ui.running.communicate()


@pytest.fixture(scope="session")
def ui_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStore]:
    """The store of the UI tests (see the module docstring); shared by the whole session."""
    ui = make_ui_store(tmp_path_factory.mktemp("ui-store"))
    try:
        yield ui
    finally:
        release_running(ui)


@dataclass
class UiServer:
    """A running ``replicator ui``: its URL (with ``?token=`` when it has one) and process."""

    url: str
    proc: subprocess.Popen[str]
    token: str | None = None

    @property
    def base(self) -> str:
        """The URL without the query: ``http://127.0.0.1:PORT``."""
        return self.url.split("?", 1)[0].rstrip("/")


@contextmanager
def start_ui(
    store: Path, *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> Iterator[UiServer]:
    """``replicator ui --port 0 --store STORE ARGS`` in a subprocess, until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "replicator", "ui", "--port", "0", "--store", str(store), *args],
        env=env or clean_env(),
        cwd=store.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _first_line(proc, timeout)
        prefix = "replicator ui: "
        if not line.startswith(prefix):
            raise AssertionError(f"unexpected first line of replicator ui: {line!r}")
        url = line[len(prefix) :].strip()
        token = url.split("?token=", 1)[1] if "?token=" in url else None
        yield UiServer(url=url, proc=proc, token=token)
    finally:
        stop(proc)


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line of the server's stdout, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.1):
            line = proc.stdout.readline()
            if line:
                return line
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"replicator ui exited {proc.returncode}: {err}")
    raise AssertionError(f"replicator ui printed no URL within {timeout} s")


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop the server (SIGINT, as Ctrl+C), killing it if it does not end within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="session")
def ui_server(ui_store: UiStore) -> Iterator[UiServer]:
    """``replicator ui`` over :func:`ui_store` on 127.0.0.1, for the whole session."""
    with start_ui(ui_store.store) as server:
        yield server


__all__ = ["SECRET", "UiServer", "UiStore", "clean_env", "start_ui", "stop"]
