"""An unmodified argparse script gets its seed through placeholders in the command (issue 11, 6)."""

from __future__ import annotations

import json
from pathlib import Path

from replicator.store import Store

from ..conftest import run_cli

SCRIPT = """
import argparse, random
parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=1234)
parser.add_argument("--lr", type=float, default=0.0)
parser.add_argument("--out", default="")
args = parser.parse_args()
random.seed(args.seed)
print(f"result {random.random():.12f} lr {args.lr}")
if args.out:
    open(args.out, "w").write("weights")
"""


def _runs(root: Path) -> list:
    return Store(root / ".replicator").records()


def _result(record) -> str:
    return (record.dir / "stdout.log").read_text().split()[1]


def test_seed_placeholder_gives_each_run_its_seed_and_records_the_command(repo: Path) -> None:
    (repo / "s.py").write_text(SCRIPT)
    (repo / "c.yaml").write_text("optim:\n  lr: 0.25\n")
    proc = run_cli(
        "run",
        "-c",
        "c.yaml",
        "--seeds",
        "2",
        "--",
        "python",
        "s.py",
        "--seed",
        "{seed}",
        "--lr",
        "{config.optim.lr}",
        "--out",
        "{run_dir}/model.bin",
        cwd=repo,
    )
    assert proc.returncode == 0, proc.stderr
    assert "may not have reached" not in proc.stderr
    first, second = _runs(repo)
    assert _result(first) != _result(second)  # two seeds, two results
    for record in (first, second):
        meta = record.meta
        assert meta["command"] == [
            "python", "s.py", "--seed", "{seed}", "--lr", "{config.optim.lr}",
            "--out", "{run_dir}/model.bin",
        ]  # fmt: skip
        assert meta["command_run"] == [
            "python", "s.py", "--seed", str(record.seed), "--lr", "0.25",
            "--out", f"{record.dir}/model.bin",
        ]  # fmt: skip
        assert "seed_warning" not in meta
        assert (record.dir / "model.bin").read_text() == "weights"
        assert "lr 0.25" in (record.dir / "stdout.log").read_text()
    shown = run_cli("show", first.id, cwd=repo).stdout
    assert f"command run:           python s.py --seed {first.seed} --lr 0.25" in shown


def test_without_the_placeholder_the_seed_never_arrives_and_the_run_warns(repo: Path) -> None:
    (repo / "s.py").write_text(SCRIPT)
    proc = run_cli("run", "--seeds", "2", "--", "python", "s.py", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    first, second = _runs(repo)
    assert _result(first) == _result(second)  # the script's own default seed, twice
    assert proc.stderr.count("warning: the seed may not have reached your script") == 2
    for record in (first, second):
        assert "may not have reached your script" in record.meta["seed_warning"]
        assert "--seed {seed}" in record.meta["seed_warning"]
    assert "warning:               the seed may not" in run_cli("show", first.id, cwd=repo).stdout


def test_a_script_that_joins_the_run_gets_no_warning(repo: Path) -> None:
    (repo / "j.py").write_text(
        "import replicator\nwith replicator.start({'a': 1}) as run:\n    pass\n"
    )
    proc = run_cli("run", "--", "python", "j.py", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "may not have reached" not in proc.stderr
    (record,) = _runs(repo)
    assert "seed_warning" not in record.meta


def test_unknown_placeholder_stops_before_anything_starts(repo: Path) -> None:
    (repo / "s.py").write_text(SCRIPT)
    proc = run_cli("run", "--seeds", "2", "--", "python", "s.py", "--seed", "{sed}", cwd=repo)
    assert proc.returncode == 2
    assert "Unknown placeholder {sed}" in proc.stderr and "did you mean {seed}" in proc.stderr
    assert "{seed}, {run_dir}, {run_id}, {config.KEY.PATH}" in proc.stderr
    assert "{{" in proc.stderr
    proc = run_cli("run", "--", "python", "s.py", "--lr", "{config.optim.lr}", cwd=repo)
    assert proc.returncode == 2
    assert "the run's config has no key 'optim.lr'" in proc.stderr
    assert not (repo / ".replicator" / "runs").exists() or not any(
        (repo / ".replicator" / "runs").iterdir()
    )


def test_braces_that_are_no_placeholder_pass_unchanged(repo: Path) -> None:
    """A dict literal, an awk program or a script's own template field is the user's text."""
    code = "import sys; print({1: 2}, sys.argv[1:])"
    proc = run_cli("run", "--", "python", "-c", code, "{print $1}", "{x}", "{{y}}", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert "{1: 2} ['{print $1}', '{x}', '{{y}}']" in proc.stdout


def test_double_braces_are_literal_and_a_resume_substitutes_again(repo: Path) -> None:
    code = "import sys; print('args', sys.argv[1:]); sys.exit(3)"
    proc = run_cli(
        "run", "--seed", "5", "--", "python", "-c", code, "{{seed}}", "{seed}", "{run_id}", cwd=repo
    )
    assert proc.returncode == 3
    (record,) = _runs(repo)
    assert f"args ['{{seed}}', '5', '{record.id}']" in proc.stdout
    resumed = run_cli("run", "--resume", record.id, cwd=repo)
    assert resumed.returncode == 3, resumed.stderr
    assert f"args ['{{seed}}', '5', '{record.id}']" in resumed.stdout
    meta = json.loads((record.dir / "run.json").read_text())
    (entry,) = meta["resumes"]
    assert entry["command"] == ["python", "-c", code, "{{seed}}", "{seed}", "{run_id}"]
    assert entry["command_run"] == ["python", "-c", code, "{seed}", "5", record.id]


def test_a_run_recorded_before_placeholders_resumes_its_command_as_written(repo: Path) -> None:
    code = "import sys; print('got', {1: 2}); sys.exit(4)"
    proc = run_cli("run", "--", "python", "-c", "pass", cwd=repo)
    assert proc.returncode == 0
    (record,) = _runs(repo)
    meta = json.loads((record.dir / "run.json").read_text())
    # as 0.1.0 recorded it: the command with its braces, no command_run
    meta["command"] = ["python", "-c", code]
    meta.pop("command_run")
    (record.dir / "run.json").write_text(json.dumps(meta))
    resumed = run_cli("run", "--resume", record.id, "--resume-completed", cwd=repo)
    assert resumed.returncode == 4, resumed.stderr
    assert "got {1: 2}" in resumed.stdout
