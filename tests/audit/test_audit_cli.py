"""``replicator audit`` on the command line: a command after '--', a recorded run, --json for
CI, exit codes, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import run_cli

PLANTED = Path(__file__).with_name("planted")
PATTERN = r"step (?P<step>\d+) \| \w+ (?P<value>\S+)"


def _repo(root: Path, *scripts: str) -> Path:
    root.mkdir()
    for name in scripts:
        shutil.copyfile(PLANTED / f"{name}.py", root / f"{name}.py")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "scripts"], cwd=root, check=True)
    return root


def test_audit_command_names_the_source_and_exits_1(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "project", "set_order")
    env = {"REPLICATOR_STORE": str(tmp_path / "store")}

    done = run_cli(
        "audit", "--metric-pattern", PATTERN, "--", "python", "set_order.py", cwd=repo, env=env
    )

    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "Runs: 2 agreed" in out, done.stderr
    assert "hashseed       CHANGES the result  metric value at step 0:" in out
    assert "-> reproducible only under replicator run" in out
    assert "set_order.py:5  set-order  [confirmed]" in out
    assert out.rstrip().endswith(
        "Verdict: NOT REPEATABLE (a factor changes the result: hashseed, set_order.py:5)"
    )
    assert "replicator: 2 runs with seed 0" in done.stderr  # progress goes to stderr
    # every run of the audit is an ordinary run, filed under the experiment 'audit'
    listed = run_cli("ls", "--experiment", "audit", "--json", cwd=repo, env=env)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 7  # 2 runs + hashseed, threads, cores, clock, listing


def test_audit_of_a_recorded_run_uses_its_command_and_seed(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "project", "clean_seeded_rng")
    env = {"REPLICATOR_STORE": str(tmp_path / "store")}
    recorded = run_cli(
        "run", "--seed", "3", "--metric-pattern", PATTERN, "--", "python", "clean_seeded_rng.py",
        cwd=repo, env=env,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr

    done = run_cli("audit", "last", "--json", cwd=repo, env=env)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["of_run"] is not None and report["seed"] == 3
    assert report["command"] == ["python", "clean_seeded_rng.py"]
    assert report["agreed"] is True and report["passed"] is True and report["exit_code"] == 0
    assert report["sources"] == [] and report["findings"] == []
    assert {f["name"]: f["status"] for f in report["factors"]}["hashseed"] == "unchanged"
    assert report["files_run"] == ["clean_seeded_rng.py"]


def test_audit_bad_input_says_what_to_do(tmp_path: Path) -> None:
    nothing = run_cli("audit", cwd=tmp_path)
    assert nothing.returncode == 2
    assert "Nothing to audit: give a run (replicator audit RUN) or a command after '--'" in (
        nothing.stderr
    )
    one = run_cli("audit", "--runs", "1", "--", "python", "x.py", cwd=tmp_path)
    assert one.returncode == 2
    assert "--runs must be at least 2 to compare runs, got 1." in one.stderr
    typo = run_cli("audit", "--factor", "hashsed", "--", "python", "x.py", cwd=tmp_path)
    assert typo.returncode == 2
    assert "Unknown factor(s) hashsed; choose from hashseed, threads, cores," in typo.stderr


def test_audit_of_a_command_that_always_fails_points_at_its_stderr(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise SystemExit('no data here')\n")
    env = {"REPLICATOR_STORE": str(tmp_path / "store")}

    done = run_cli("audit", "--", "python", "broken.py", cwd=tmp_path, env=env)

    assert done.returncode == 2
    assert "The command failed (exit 1) in each of the audit's 2 runs" in done.stderr
    assert "stderr.log and fix the command first." in done.stderr
