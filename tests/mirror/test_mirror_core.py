"""The mirror worker with real runs: `replicator run --mirror`, start(mirror=...), bad input,
a sink that fails, `replicator mirror` filling the gap, and `show`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from replicator.store.metrics import read_metrics

from ..conftest import git, run_cli

TRAIN = """\
import replicator
cfg = {{"optim": {{"lr": 0.1}}, "epochs": 3}}
with replicator.start(cfg{mirror}) as run:
    for step in range(25):
        run.log({{"loss": 1.0 / (step + 1), "acc": step / 25}}, step=step)
    run.summary["best_acc"] = 0.96
"""


def _script(repo: Path, mirror: str = "", name: str = "train.py") -> Path:
    (repo / name).write_text(TRAIN.format(mirror=mirror))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"add {name}")
    return repo / name


def _only_run(repo: Path) -> Path:
    runs = list((repo / ".replicator" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def _mirrors(run_dir: Path) -> dict:
    return json.loads((run_dir / "mirrors.json").read_text())


def _points(run_dir: Path) -> int:
    return len(read_metrics(run_dir / "metrics.jsonl"))


def test_run_mirror_sends_every_point_once_and_show_says_so(repo: Path) -> None:
    _script(repo)
    done = run_cli("run", "--mirror", "tensorboard", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    run_dir = _only_run(repo)
    state = _mirrors(run_dir)["tensorboard"]
    assert state["status"] == "ok"
    assert state["closed"] is True
    assert state["sent_points"] == _points(run_dir) == 50
    assert state["offset"] == (run_dir / "metrics.jsonl").stat().st_size
    assert state["where"] == str(run_dir / "mirror" / "tensorboard")
    assert "warning" not in done.stderr  # nothing to report
    shown = run_cli("show", run_dir.name)
    assert shown.returncode == 0, shown.stderr
    mirrors = shown.stdout.split("\nMirrors\n", 1)[1].splitlines()
    assert mirrors[0].split() == ["tensorboard", "ok", "50", "points", "->", state["where"]]


def test_unknown_sink_stops_before_the_run_starts(repo: Path) -> None:
    _script(repo)
    done = run_cli("run", "--mirror", "tensorboard,mlfow", "--", sys.executable, "train.py")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: --mirror: unknown mirror 'mlfow'. Known mirrors: tensorboard, mlflow, wandb, "
        "comet, neptune, visdom."
    )
    assert not (repo / ".replicator" / "runs").exists()


def test_missing_package_names_the_extra_before_the_run_starts(repo: Path, tmp_path: Path) -> None:
    # A real interpreter in which the package cannot be found (as after `pip uninstall mlflow`).
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'mlflow':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    _script(repo)
    done = run_cli(
        "run", "--mirror", "mlflow", "--", sys.executable, "train.py",
        env={"PYTHONPATH": str(blocker)},
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: Mirroring runs to mlflow needs the optional package 'mlflow'. "
        "Install it with: pip install 'replicator[mlflow]'"
    )
    assert not (repo / ".replicator" / "runs").exists()


def test_credential_among_the_options_is_refused(repo: Path) -> None:
    (repo / "replicator.yaml").write_text("mirror:\n  mlflow:\n    api_token: abc\n")
    _script(repo)
    done = run_cli("run", "--", sys.executable, "train.py")
    assert done.returncode == 2
    assert "option 'api_token' of mirror 'mlflow' looks like a credential" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (repo / ".replicator" / "runs").exists()


def test_replicator_yaml_names_the_sinks_and_their_options(repo: Path, tmp_path: Path) -> None:
    logs = tmp_path / "tb"
    (repo / "replicator.yaml").write_text(f"mirror:\n  tensorboard:\n    log_dir: {logs}\n")
    _script(repo)
    done = run_cli("run", "-e", "mlp", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    run_dir = _only_run(repo)
    state = _mirrors(run_dir)["tensorboard"]
    assert state["where"] == str(logs / "mlp" / run_dir.name)
    assert state["options"] == {"log_dir": str(logs)}
    assert list((logs / "mlp" / run_dir.name).glob("events.out.tfevents.*"))
    # --mirror none turns the project's sinks off for one run
    again = run_cli("run", "--mirror", "none", "--", sys.executable, "train.py")
    assert again.returncode == 0, again.stderr
    newest = max((repo / ".replicator" / "runs").iterdir())
    assert not (newest / "mirrors.json").exists()


def test_script_joining_a_run_is_mirrored_once_by_the_recorder(repo: Path) -> None:
    _script(repo, mirror=', mirror="tensorboard"')
    done = run_cli("run", "--mirror", "tensorboard", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    run_dir = _only_run(repo)
    assert json.loads((run_dir / "config" / "mirror.json").read_text()) == {"tensorboard": {}}
    state = _mirrors(run_dir)
    assert list(state) == ["tensorboard"]
    assert state["tensorboard"]["sent_points"] == 50
    assert len(list((run_dir / "mirror" / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_script_joining_a_run_asks_the_recorder_for_its_sinks(repo: Path) -> None:
    _script(repo, mirror=', mirror=["tensorboard"]')
    done = run_cli("run", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    run_dir = _only_run(repo)
    state = _mirrors(run_dir)["tensorboard"]
    assert (state["status"], state["sent_points"]) == ("ok", 50)


def test_start_alone_mirrors_from_the_scripts_process(repo: Path) -> None:
    _script(repo, mirror=', mirror={"tensorboard": {}}')
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    run_dir = _only_run(repo)
    state = _mirrors(run_dir)["tensorboard"]
    assert (state["status"], state["sent_points"], state["closed"]) == ("ok", 50, True)


def test_start_with_an_unknown_sink_raises_before_the_run_opens(repo: Path) -> None:
    _script(repo, mirror=', mirror="tensorbord"')
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert (
        "replicator.errors.UsageError: start(mirror=...): unknown mirror 'tensorbord'. "
        "Known mirrors: tensorboard, mlflow, wandb, comet, neptune, visdom."
    ) in done.stderr
    assert not (repo / ".replicator" / "runs").exists()


def test_a_failing_sink_never_fails_the_run_and_its_gap_is_filled_later(
    repo: Path, tmp_path: Path
) -> None:
    # The log dir is a file: TensorBoard's writer cannot create its folder there.
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "exp").write_text("not a folder\n")
    (repo / "replicator.yaml").write_text(f"mirror:\n  tensorboard:\n    log_dir: {blocked}\n")
    _script(repo)
    done = run_cli("run", "-e", "exp", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    assert "completed (exit code 0)" in done.stderr
    reports = [line for line in done.stderr.splitlines() if "mirror tensorboard:" in line]
    assert len(reports) == 2, done.stderr  # the failure once, then the end-of-run summary
    assert "NotADirectoryError" in reports[0] and "retrying with backoff" in reports[0]
    assert "replicator mirror" in reports[1] and "--to tensorboard" in reports[1]
    run_dir = _only_run(repo)
    state = _mirrors(run_dir)["tensorboard"]
    assert state["status"] == "failed"
    assert (state["sent_points"], state["offset"], state["closed"]) == (0, 0, False)
    assert "NotADirectoryError" in state["errors"][0]
    assert _points(run_dir) == 50  # the local record is complete
    shown = run_cli("show", run_dir.name)
    assert f"fill: replicator mirror {run_dir.name} --to tensorboard" in shown.stdout

    # The folder is fixed: the gap is filled from the recorded offset.
    (blocked / "exp").unlink()
    filled = run_cli("mirror", run_dir.name, "--to", "tensorboard")
    assert filled.returncode == 0, filled.stderr
    assert filled.stdout.startswith("tensorboard: ok, 50 points -> ")
    state = _mirrors(run_dir)["tensorboard"]
    assert (state["status"], state["sent_points"], state["closed"]) == ("ok", 50, True)
    # Sent again, a sink that has everything is left as it is.
    again = run_cli("mirror", run_dir.name, "--to", "tensorboard")
    assert again.returncode == 0, again.stderr
    assert _mirrors(run_dir)["tensorboard"]["sent_points"] == 50
    assert len(list((blocked / "exp" / run_dir.name).glob("events.out.tfevents.*"))) == 1


def test_mirror_command_bad_input(repo: Path) -> None:
    _script(repo)
    assert run_cli("run", "--", sys.executable, "train.py").returncode == 0
    unknown = run_cli("mirror", "last", "--to", "tensorbaord")
    assert unknown.returncode == 2
    assert "unknown mirror 'tensorbaord'" in unknown.stderr
    missing = run_cli("mirror", "nosuchrun", "--to", "tensorboard")
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize("value", ["[1, 2]", "7"])
def test_bad_mirror_setting_names_file_and_line(repo: Path, value: str) -> None:
    (repo / "replicator.yaml").write_text(f"store: .replicator\nmirror: {value}\n")
    _script(repo)
    done = run_cli("run", "--", sys.executable, "train.py")
    assert done.returncode == 2
    assert f"Setting 'mirror' in {repo / 'replicator.yaml'}:2 must list sinks" in done.stderr
