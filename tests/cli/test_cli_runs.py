"""`replicator ls`, `show`, `diff`, `index`: exit codes and output on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import run_cli

TRAIN = (
    "import replicator\ncfg = replicator.load_config('c.yaml')\n"
    "with replicator.start(cfg) as run:\n    run.log({'loss': cfg.lr * 2})\n    run.summary['acc'] = 1 - cfg.lr\n"
)


@pytest.fixture
def store_with_runs(repo: Path) -> Path:
    (repo / "c.yaml").write_text("lr: 0.1\nwidth: 8\n")
    (repo / "t.py").write_text(TRAIN)
    for lr, seed in (("0.1", "1"), ("0.5", "2")):
        proc = run_cli(
            "run",
            "-c",
            "c.yaml",
            "--set",
            f"lr={lr}",
            "--seed",
            seed,
            "-e",
            "mlp",
            "--",
            "python",
            "t.py",
            cwd=repo,
        )
        assert proc.returncode == 0, proc.stderr
    assert (
        run_cli(
            "run", "-e", "other", "--", "python", "-c", "raise SystemExit(1)", cwd=repo
        ).returncode
        == 1
    )
    return repo


def ids(repo: Path) -> list[str]:
    return [r["id"] for r in json.loads(run_cli("ls", "--json", cwd=repo).stdout)]


def test_ls_lists_and_filters(store_with_runs: Path) -> None:
    proc = run_cli("ls", cwd=store_with_runs)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "EXPERIMENT",
        "NAME",
        "STATUS",
        "SEED",
        "STARTED",
        "DURATION",
        "METRICS",
    ]
    assert len(lines) == 4
    assert "completed" in lines[1] and "acc=0.9" in lines[1]
    where = run_cli(
        "ls", "--where", "config.lr < 0.2 and summary.acc > 0.8", "--json", cwd=store_with_runs
    )
    assert [r["config"]["lr"] for r in json.loads(where.stdout)] == [0.1]
    failed = json.loads(run_cli("ls", "--status", "failed", "--json", cwd=store_with_runs).stdout)
    assert [r["experiment"] for r in failed] == ["other"]
    assert len(json.loads(run_cli("ls", "-e", "mlp", "--json", cwd=store_with_runs).stdout)) == 2
    assert len(json.loads(run_cli("ls", "--limit", "1", "--json", cwd=store_with_runs).stdout)) == 1
    empty = run_cli("ls", "--where", "seed == 99", cwd=store_with_runs)
    assert empty.returncode == 0 and "match the filters" in empty.stdout


def test_ls_bad_where_is_a_usage_error(store_with_runs: Path) -> None:
    proc = run_cli("ls", "--where", "config.lr <", cwd=store_with_runs)
    assert proc.returncode == 2
    assert "not a valid expression" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("ls", "--where", "__import__('os').system('x')", cwd=store_with_runs)
    assert proc.returncode == 2 and "is not allowed" in proc.stderr


def test_ls_warns_about_a_damaged_run_and_lists_the_rest(store_with_runs: Path) -> None:
    first = store_with_runs / ".replicator" / "runs" / ids(store_with_runs)[0] / "run.json"
    first.write_text("{not json")
    proc = run_cli("ls", cwd=store_with_runs)
    assert proc.returncode == 0
    assert "warning: skipped" in proc.stderr and "run.json is damaged" in proc.stderr
    assert len(proc.stdout.splitlines()) == 3


def test_show_prints_everything_recorded(store_with_runs: Path) -> None:
    run_id = ids(store_with_runs)[1]
    proc = run_cli("show", run_id[-6:], cwd=store_with_runs)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in (
        f"Run {run_id}",
        "experiment:            mlp",
        "status:                completed (exit code 0)",
        "seed:                  2 (given)",
        "command:               python t.py",
        "lr:                    0.5",
        "Code",
        "commit:",
        "Environment",
        "packages:",
        "Hardware",
        "cpu:",
        "Metrics",
        "acc:",
    ):
        assert text in out, text
    details = json.loads(run_cli("show", run_id, "--json", cwd=store_with_runs).stdout)
    assert details["run"]["config"]["lr"] == 0.5
    assert details["metrics"]["loss"]["points"] == 1
    assert "run.json" in details["files"]
    missing = run_cli("show", "nope", cwd=store_with_runs)
    assert missing.returncode == 2 and "No run 'nope'" in missing.stderr


def test_show_prints_data_checkpoints_outputs_and_failures(repo: Path) -> None:
    (repo / "data" / "train").mkdir(parents=True)
    (repo / "data" / "train" / "a.txt").write_text("abc\n")
    (repo / "c.yaml").write_text("lr: 0.1\ndata:\n  train: data/train\n")
    (repo / "t.py").write_text(
        "import replicator\ncfg = replicator.load_config('c.yaml')\n"
        "with replicator.start(cfg) as run:\n"
        "    for s in range(3):\n        run.log({'loss': 0.5 - s / 10}, step=s)\n"
        "    run.checkpoint({'w': [1, 2]}, step=2, metrics={'loss': 0.3})\n"
        "    open('out.txt', 'w').write('hi')\n"
    )
    args = ("run", "-c", "c.yaml", "--seeds", "2", "-o", "out.txt", "-o", "gone.txt")
    assert run_cli(*args, "--", "python", "t.py", cwd=repo).returncode == 0
    failed = run_cli("run", "-e", "other", "--", "python", "-c", "raise SystemExit(3)", cwd=repo)
    assert failed.returncode == 3
    out = run_cli("show", ids(repo)[0], cwd=repo).stdout
    for text in (
        "seed:                  ",
        ", sweep ",
        "loss:                  0.3  (3 points, steps 0..2)",
        "\nData\n  train  blake3:",
        "\nCheckpoints\n  step 2:                latest  ",
        "  loss=0.3  step000000002-",
        "\nOutputs (declared with --outputs or the config's outputs)\n  out.txt:     "
        "          2 bytes blake3:",
        "  gone.txt:              declared but missing",
    ):
        assert text in out, text
    out = run_cli("show", "last", cwd=repo).stdout
    assert "status:                failed (exit code 3)" in out
    assert "status history:        running -> failed" in out
    assert "\nMetrics\n  (none)\n" in out and "Checkpoints" not in out and "Data" not in out


def test_diff_ranks_packages_before_config_before_metrics(store_with_runs: Path) -> None:
    a, b, _ = ids(store_with_runs)
    env_file = store_with_runs / ".replicator" / "runs" / b / "environment.json"
    env = json.loads(env_file.read_text())
    env["packages"]["numpy"]["version"] = "0.0.1"
    env_file.write_text(json.dumps(env))
    proc = run_cli("diff", a, b, cwd=store_with_runs)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.index("environment: numeric libraries") < out.index("seeds") < out.index("config")
    assert out.index("config") < out.index("metrics")
    assert "lr: 0.1 -> 0.5" in out and "seed: 1 -> 2" in out and "numpy" in out and "0.0.1" in out
    assert "width" not in out  # only what differs
    data = json.loads(run_cli("diff", a, b, "--json", cwd=store_with_runs).stdout)
    ranks = [d["rank"] for d in data["differences"]]
    assert ranks == sorted(ranks)
    assert data["differences"][0]["section"].startswith("environment")


def test_index_rebuild(store_with_runs: Path) -> None:
    proc = run_cli("index", "rebuild", cwd=store_with_runs)
    assert proc.returncode == 0 and proc.stdout.startswith("Indexed 3 runs")


def test_where_typos_are_caught(store_with_runs: Path) -> None:
    proc = run_cli("ls", "--where", "confg.lr < 1", cwd=store_with_runs)
    assert proc.returncode == 2 and "unknown field 'confg'" in proc.stderr
    proc = run_cli("ls", "--where", "seed = 1", cwd=store_with_runs)
    assert proc.returncode == 2 and "Compare with '=='" in proc.stderr
    proc = run_cli("ls", "--where", "summary.acx > 0.1", cwd=store_with_runs)
    assert proc.returncode == 0 and "warning: no run has 'summary.acx' (a typo?)" in proc.stderr
