"""`replicator run` end to end: real child processes, real git, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replicator.store import Store
from replicator.store.metrics import read_metrics

from ..conftest import git, run_cli

SCRIPT = """
import json, os, sys
import replicator
cfg = replicator.load_config("config.yaml")
with replicator.start(cfg) as run:
    for step in range(3):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.summary["acc"] = cfg.optim.lr * 10
    json.dump({"hashseed": os.environ.get("PYTHONHASHSEED"), "seed": run.seed,
               "lr": cfg.optim.lr,
               "set_order": list({"a", "b", "c", "d", "e"})}, open("child.json", "w"))
    print("trained")
"""


def runs(root: Path) -> list:
    return Store(root / ".replicator").records()


@pytest.fixture
def project(repo: Path) -> Path:
    (repo / "config.yaml").write_text("# demo\noptim:\n  lr: 0.1  # step size\nsteps: 3\n")
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add training")
    return repo


def test_run_records_config_seed_code_environment_and_metrics(project: Path) -> None:
    (project / "helper.py").write_text("X = 1\n")  # untracked, must be in the snapshot
    (project / "train.py").write_text(SCRIPT + "\n# uncommitted edit\n")
    proc = run_cli(
        "run",
        "-c",
        "config.yaml",
        "--set",
        "optim.lr=0.5",
        "--seed",
        "7",
        "--name",
        "first",
        "--",
        "python",
        "train.py",
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    assert "trained" in proc.stdout  # tee'd live to the user
    (record,) = runs(project)
    d = record.dir
    assert record.status == "completed" and record.seed == 7 and record.name == "first"
    assert record.experiment == "config"
    assert record.config == {"optim": {"lr": 0.5}, "steps": 3, "seed": 7}
    assert record.summary == {"loss": pytest.approx(1 / 3), "acc": 5.0}
    child = json.loads((project / "child.json").read_text())
    assert child["hashseed"] == "7"
    assert child["seed"] == 7 and child["lr"] == 0.5
    # config: raw file, overrides, resolved, flat, hash
    assert "# step size" in (d / "config" / "raw" / "config.yaml").read_text()
    sources = json.loads((d / "config" / "sources.json").read_text())
    assert sources["overrides"] == ["optim.lr=0.5"]
    assert "lr: 0.5" in (d / "config.yaml").read_text()
    assert "optim.lr,0.5" in (d / "hparams.csv").read_text()
    meta = json.loads((d / "run.json").read_text())
    assert meta["schema_version"] == 1 and len(meta["config_hash"]) == 64
    assert meta["exit_code"] == 0 and meta["command"] == ["python", "train.py"]
    # code: snapshot holds the uncommitted edit and the untracked helper; user's state untouched
    code = json.loads((d / "code.json").read_text())
    assert code["dirty"] is True and code["branch"] == "main"
    assert git(project, "show", f"{code['snapshot']}:helper.py") == "X = 1"
    assert "uncommitted edit" in git(project, "show", f"{code['snapshot']}:train.py")
    assert git(project, "rev-parse", code["snapshot_ref"]) == code["snapshot"]
    status = git(project, "status", "--porcelain", "-uall").splitlines()
    assert status == [" M train.py", "?? child.json", "?? helper.py"]  # index and tree untouched
    assert "?? helper.py" in status  # still untracked: the user's index was not touched
    patch = (d / "code.patch").read_text()
    assert "helper.py" in patch and "uncommitted edit" in patch
    # environment and hardware
    env = json.loads((d / "environment.json").read_text())
    assert env["python"]["version_info"][:2] == list(sys.version_info[:2])
    assert env["packages"]["omegaconf"]["origin"] == "index"
    assert env["relevant_env"]["PYTHONHASHSEED"] == "7"
    hw = json.loads((d / "hardware.json").read_text())
    assert hw["cpu"]["logical_cores"] == os.cpu_count()
    # metrics and outputs
    assert [(m["step"], m["key"]) for m in read_metrics(d / "metrics.jsonl")] == [
        (0, "loss"),
        (1, "loss"),
        (2, "loss"),
    ]
    outputs = json.loads((d / "outputs.json").read_text())
    assert outputs["mode"] == "detected"
    assert [f["path"] for f in outputs["files"]] == ["child.json"]
    assert (d / "stdout.log").read_text() == "trained\n"


def test_seeds_sweep_draws_once_and_stores_the_draw(project: Path) -> None:
    proc = run_cli(
        "run",
        "-c",
        "config.yaml",
        "--seeds",
        "3",
        "--seed-root",
        "42",
        "--",
        "python",
        "train.py",
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    records = runs(project)
    assert len(records) == 3
    seeds = [r.seed for r in records]
    assert len(set(seeds)) == 3
    sweeps = list((project / ".replicator" / "experiments" / "config" / "sweeps").glob("*.json"))
    (sweep,) = [json.loads(p.read_text()) for p in sweeps]
    assert sweep["seeds"] == seeds and sweep["root"] == "42"
    import numpy as np

    expected = [
        int(s.generate_state(1, dtype=np.uint32)[0]) for s in np.random.SeedSequence(42).spawn(3)
    ]
    assert seeds == expected
    assert [r.meta["seeding"]["index"] for r in records] == [0, 1, 2]


def test_pythonhashseed_makes_set_order_repeatable(project: Path) -> None:
    orders = []
    for _ in range(2):
        assert (
            run_cli("run", "--seed", "3", "--", "python", "train.py", cwd=project).returncode == 0
        )
        orders.append(json.loads((project / "child.json").read_text())["set_order"])
    assert orders[0] == orders[1]


def test_script_without_replicator_gets_metrics_from_output_and_outputs(repo: Path) -> None:
    (repo / "old.py").write_text(
        "import pathlib\nfor s in range(0, 300, 100):\n    print(f'step {s} | loss {2.5 - s/100:.2f}')\n"
        "pathlib.Path('model.bin').write_bytes(b'weights')\npathlib.Path('notes.txt').write_text('x')\n"
    )
    pattern = r"step (?P<step>\d+) \| loss (?P<loss>[-0-9.]+)"
    proc = run_cli(
        "run",
        "--metric-pattern",
        pattern,
        "--outputs",
        "model.bin",
        "--",
        "python",
        "old.py",
        cwd=repo,
    )
    assert proc.returncode == 0, proc.stderr
    (record,) = runs(repo)
    history = read_metrics(record.dir / "metrics.jsonl")
    assert [(m["step"], m["value"], m["source"]) for m in history] == [
        (0, 2.5, "output"),
        (100, 1.5, "output"),
        (200, 0.5, "output"),
    ]
    assert record.summary == {"loss": 0.5}
    outputs = json.loads((record.dir / "outputs.json").read_text())
    assert outputs["mode"] == "declared"
    (entry,) = outputs["files"]
    import blake3

    assert entry["path"] == "model.bin" and entry["size"] == 7
    assert entry["blake3"] == blake3.blake3(b"weights").hexdigest()


def test_failed_command_is_recorded_with_its_exit_code(repo: Path) -> None:
    proc = run_cli(
        "run",
        "--",
        "python",
        "-c",
        "import sys; print('bad', file=sys.stderr); sys.exit(3)",
        cwd=repo,
    )
    assert proc.returncode == 3
    assert "bad" in proc.stderr
    (record,) = runs(repo)
    assert record.status == "failed" and record.meta["exit_code"] == 3
    assert (record.dir / "stderr.log").read_text() == "bad\n"
    history = [
        json.loads(line)["status"]
        for line in (record.dir / "status.jsonl").read_text().splitlines()
    ]
    assert history == ["running", "failed"]


def test_outside_git_the_run_works_and_says_so(tmp_path: Path) -> None:
    proc = run_cli("run", "--", "python", "-c", "print(1)", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (record,) = runs(tmp_path)
    code = json.loads((record.dir / "code.json").read_text())
    assert code["repo"] is None and "not inside a git repository" in code["note"]
    assert not (record.dir / "code.patch").exists()
    show = run_cli("show", "last", cwd=tmp_path)
    assert "not inside a git repository" in show.stdout


def test_command_not_found_is_a_clear_error(repo: Path) -> None:
    proc = run_cli("run", "--", "no-such-program-xyz", cwd=repo)
    assert proc.returncode == 2
    assert "cannot start 'no-such-program-xyz'" in proc.stderr and "Traceback" not in proc.stderr
    (record,) = runs(repo)
    assert record.status == "failed" and record.meta["exit_code"] == 127


def test_bad_override_is_a_usage_error_before_anything_runs(project: Path) -> None:
    proc = run_cli(
        "run",
        "-c",
        "config.yaml",
        "--set",
        "optim.lr=fast",
        "--",
        "python",
        "train.py",
        cwd=project,
    )
    assert proc.returncode == 2
    assert "Config key 'optim.lr' in config.yaml:3 must be a number, got 'fast'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project / ".replicator" / "runs").exists()
    proc = run_cli("run", "--seed", "1", "--seeds", "2", "--", "true", cwd=project)
    assert proc.returncode == 2 and "not both" in proc.stderr
    proc = run_cli("run", "--metric-pattern", "loss ([0-9.]+)", "--", "true", cwd=project)
    assert proc.returncode == 2 and "no named group" in proc.stderr


LONG = "import time, sys\nprint('ready', flush=True)\nfor i in range(600):\n    time.sleep(0.1)\n"


def _start(cwd: Path, script: str) -> subprocess.Popen[str]:
    (cwd / "long.py").write_text(script)
    proc = subprocess.Popen(
        [sys.executable, "-m", "replicator", "run", "--", "python", "long.py"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_is_forwarded_and_run_is_interrupted(repo: Path, signum: int) -> None:
    proc = _start(repo, LONG)
    proc.send_signal(signum)
    proc.communicate(timeout=30)
    # the command's own code: the forwarded signal ended the script, so 128 + its number
    assert proc.returncode == 128 + signum
    (record,) = runs(repo)
    assert record.status == "interrupted"
    assert record.meta["signal"] == signal.Signals(signum).name


def test_killed_recorder_reads_as_crashed_and_child_stops(repo: Path) -> None:
    marker = repo / "alive.txt"
    script = (
        "import time, pathlib\nprint('ready', flush=True)\np = pathlib.Path('alive.txt')\n"
        "for i in range(600):\n    p.write_text(str(i)); time.sleep(0.05)\n"
    )
    proc = _start(repo, script)
    (running,) = runs(repo)
    assert running.status == "running"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    (record,) = runs(repo)
    assert record.status == "crashed"
    # the child got SIGTERM through the parent-death signal and stopped writing
    time.sleep(0.5)
    before = marker.read_text()
    time.sleep(0.5)
    assert marker.read_text() == before
    listing = run_cli("ls", "--status", "crashed", cwd=repo)
    assert record.id in listing.stdout


def test_secrets_never_reach_the_run_directory(repo: Path) -> None:
    hf = "hf_" + "Ab" * 17
    aws = "AKIA" + "QWERTYUIOPASDFGH"
    wandb = "0123456789abcdef" * 2 + "01234567"
    env = {
        "WANDB_API_KEY": wandb,
        "MY_PASSWORD": "pw-hunter2-pw",
        "SOME_VAR": hf,
        "DATABASE_URL": "postgres://admin:s3cr3tpass@db.example.com/x",
    }
    (repo / "p.py").write_text("import os, sys\nprint(os.environ['SOME_VAR'], sys.argv[1:])\n")
    proc = run_cli(
        "run",
        "--",
        "python",
        "p.py",
        "--api-key",
        "topsecret-arg",
        f"--token={aws}",
        "https://user:urlsecret@example.com/x",
        cwd=repo,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    (record,) = runs(repo)
    planted = [wandb, "pw-hunter2-pw", hf, "s3cr3tpass", "topsecret-arg", aws, "urlsecret"]
    for path in record.dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in planted:
                assert secret.encode() not in content, f"{secret} leaked into {path}"
    env_record = json.loads((record.dir / "environment.json").read_text())["env"]
    assert env_record["WANDB_API_KEY"] == "<redacted>" and env_record["DATABASE_URL"].startswith(
        "postgres://<redacted>@"
    )
    assert record.meta["command"][3] == "<redacted>"


def test_cli_config_replaces_the_scripts_own_path_and_script_names_the_experiment(
    repo: Path,
) -> None:
    (repo / "config.yaml").write_text("optim:\n  lr: 0.1\n")
    (repo / "alt.yaml").write_text("optim:\n  lr: 0.7\n")
    (repo / "t.py").write_text(
        "import replicator\ncfg = replicator.load_config('config.yaml')\n"
        "with replicator.start(cfg, experiment='mine') as run:\n    run.summary['lr'] = cfg.optim.lr\n"
    )
    assert run_cli("run", "-c", "alt.yaml", "--", "python", "t.py", cwd=repo).returncode == 0
    assert run_cli("run", "-e", "cli-wins", "--", "python", "t.py", cwd=repo).returncode == 0
    first, second = runs(repo)
    assert first.summary == {"lr": 0.7} and first.config["optim"] == {"lr": 0.7}
    assert first.experiment == "mine"  # the script's name, since the CLI gave none
    assert sorted(p.name for p in (first.dir / "config" / "raw").iterdir()) == ["alt.yaml"]
    assert second.summary == {"lr": 0.1} and second.experiment == "cli-wins"


def test_secrets_inside_a_shell_command_are_redacted(repo: Path) -> None:
    secret = "zz" + "TOPSECRET123" + "zz"
    proc = run_cli("run", "--", "sh", "-c", f"echo training --api-key {secret}", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    (record,) = runs(repo)
    assert record.meta["command"] == ["sh", "-c", "echo training --api-key <redacted>"]
    for path in record.dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert (record.dir / "stdout.log").read_text() == "training --api-key <redacted>\n"


def test_config_error_inside_the_script_reads_like_a_cli_error(project: Path) -> None:
    proc = run_cli("run", "--set", "optim.lrr=1", "--", "python", "train.py", cwd=project)
    assert proc.returncode == 1
    assert "Error: Override 'optim.lrr=1': config has no key 'optim.lrr'" in proc.stderr
    assert "Did you mean 'optim.lr'" in proc.stderr and "Traceback" not in proc.stderr


def test_sweep_seeds_are_filed_with_the_experiment_the_script_names(repo: Path) -> None:
    (repo / "t.py").write_text(
        "import replicator\nwith replicator.start({}, experiment='named'):\n    pass\n"
    )
    assert run_cli("run", "--seeds", "2", "--", "python", "t.py", cwd=repo).returncode == 0
    sweeps = sorted((repo / ".replicator" / "experiments").glob("*/sweeps/*.json"))
    assert [p.parent.parent.name for p in sweeps] == ["named"]
    assert {r.experiment for r in runs(repo)} == {"named"}
