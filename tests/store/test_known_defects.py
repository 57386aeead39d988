"""Runs recorded by replicator 0.1.0 with a defect that shows in their files: readers warn.

Each run is recorded for real (a script killed with SIGKILL and resumed, `replicator run`), then
left as 0.1.0 left it: the summary at the crash restored, the resume marker of parsed metrics
left out, the script's experiment not written into run.json, ``command_run`` absent. The same run
as the fixed version records it is not flagged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from replicator.record.metrics import MetricsWriter
from replicator.store import read_run
from replicator.store.defects import KnownDefectWarning, known_defects
from replicator.store.frames import load_runs

SCRIPT = """
import os, signal, sys
import replicator

resume = sys.argv[1] if len(sys.argv) > 1 else None
run = replicator.start({"lr": 0.1}, experiment="mlp", seed=3, resume=resume)
steps = range(5, 10) if resume else range(5)
for step in steps:
    run.log({"loss": 10.0 - step}, step=step)
if resume is None:
    run.flush()  # the summary now holds loss 6.0, the value at the crash
    os.kill(os.getpid(), signal.SIGKILL)
run.finish()
"""


def _python(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATOR_")}
    env.update(REPLICATOR_STORE=str(project / "store"), PYTHONHASHSEED="0")
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def resumed_run(repo: Path) -> tuple[Path, dict[str, float]]:
    """A run killed at step 4 and resumed to step 9; with the summary it had at the crash."""
    killed = _python(repo)
    assert killed.returncode == -9, killed.stderr
    (run_dir,) = (repo / "store" / "runs").iterdir()
    at_crash = json.loads((run_dir / "summary.json").read_text())
    done = _python(repo, run_dir.name)
    assert done.returncode == 0, done.stderr
    # the files below imitate what 0.1.0 left; the run says it was recorded by that version
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["replicator_version"] != "0.1.0"
    (run_dir / "run.json").write_text(json.dumps({**meta, "replicator_version": "0.1.0"}))
    return run_dir, at_crash


def test_resumed_run_of_0_1_0_with_the_crash_summary_warns(
    resumed_run: tuple[Path, dict[str, float]], cli
) -> None:
    run_dir, at_crash = resumed_run
    assert at_crash["loss"] == 6.0
    # as the fixed version recorded it: the summary follows the metrics, nothing to say
    assert json.loads((run_dir / "summary.json").read_text())["loss"] == 1.0
    assert known_defects(read_run(run_dir)) == []

    (run_dir / "summary.json").write_text(json.dumps(at_crash))  # what 0.1.0 left
    (defect,) = known_defects(read_run(run_dir))
    assert defect.id == "resume-summary" and defect.version == "0.1.0"
    with pytest.warns(
        KnownDefectWarning, match=r"loss is 6\.0 there, 1\.0 was logged last \(step 9\)"
    ):
        frame = load_runs(store=run_dir.parent.parent)
    assert list(frame["summary.loss"]) == [6.0]  # kept, with the warning
    shown = cli("show", run_dir.name, env={"REPLICATOR_STORE": str(run_dir.parent.parent)})
    assert shown.returncode == 0, shown.stderr
    assert "warning: " in shown.stdout and "1.0 was logged last (step 9)" in shown.stdout

    # a version with the fix is not suspected of it
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**meta, "replicator_version": "0.2.0"}))
    assert known_defects(read_run(run_dir)) == []


def test_parsed_metrics_appended_again_without_a_marker_are_named(
    resumed_run: tuple[Path, dict[str, float]],
) -> None:
    run_dir, _ = resumed_run
    parsed = run_dir / "parsed.jsonl"
    for session in (range(3), range(1, 4)):  # 0.1.0's resume: no marker between the sessions
        writer = MetricsWriter(parsed, source="output")
        for step in session:
            writer.log({"acc": step / 10}, step=step)
        writer.close()
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(parsed.read_text())
    (defect,) = known_defects(read_run(run_dir))
    assert defect.id == "parsed-metrics-duplicates"
    assert "2 (key, step) pairs appear twice (first: acc at step 1)" in defect.message


def test_run_filed_under_the_guessed_experiment_is_named(
    resumed_run: tuple[Path, dict[str, float]],
) -> None:
    run_dir, _ = resumed_run
    (run_dir / "config").mkdir(exist_ok=True)
    (run_dir / "config" / "experiment.json").write_text(json.dumps({"experiment": "mlp"}))
    assert known_defects(read_run(run_dir)) == []
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**meta, "experiment": "train"}))
    (defect,) = known_defects(read_run(run_dir))
    assert defect.id == "experiment-filing"
    assert "filed under experiment 'train' but its script named 'mlp'" in defect.message


def test_sweep_of_a_script_that_never_got_its_seed_is_named(repo: Path, cli) -> None:
    env = {"REPLICATOR_STORE": str(repo / "store")}
    result = cli("run", "--seeds", "2", "--", sys.executable, "-c", "print(1)", cwd=repo, env=env)
    assert result.returncode == 0, result.stderr
    for run_dir in sorted((repo / "store" / "runs").iterdir()):
        assert known_defects(read_run(run_dir)) == []  # the fixed launcher records command_run
        meta = json.loads((run_dir / "run.json").read_text())
        del meta["command_run"]  # as 0.1.0 recorded it
        (run_dir / "run.json").write_text(json.dumps({**meta, "replicator_version": "0.1.0"}))
        (defect,) = known_defects(read_run(run_dir))
        assert defect.id == "sweep-seed-unreached"
