"""Optuna search: ask/tell through the store's study, pruning from the jobs' logged metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import run_cli
from .core_helpers import make_project, runs, status, sweep_records

optuna = pytest.importorskip("optuna")


def test_study_beats_its_worst_trial_and_prunes_from_logged_metrics(repo: Path, cli) -> None:
    # loss = (x - 1)^2 + 1/(step + 1), logged at each of 12 steps
    store = make_project(repo, "x: 0.0\nsteps: 12\nstep_sleep: 0.12\n")
    result = run_cli(
        "sweep", "-c", "cfg.yaml", "--optuna", "--metric", "loss", "--direction", "minimize",
        "--sample", "x=uniform(-4,4)", "--trials", "8", "-j", "2", "--seed-root", "7",
        "--", "python", "train.py",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (record,) = sweep_records(store)
    db = store / "experiments" / "cfg" / "sweeps" / f"{record['id']}.optuna.db"
    assert record["optuna"]["storage"] == db.name and db.is_file()

    study = optuna.load_study(study_name=record["id"], storage=f"sqlite:///{db}")
    states = [t.state for t in study.trials]
    assert len(states) == 8
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, [(t.params, t.intermediate_values) for t in study.trials]
    assert len(complete) + len(pruned) == 8
    assert study.best_value < max(t.value for t in complete)
    assert record["optuna"]["best"]["value"] == study.best_value

    # every trial was one job and one run, with the x the study asked for
    by_index = {r["seeding"]["index"]: r for r in runs(store)}
    assert len(by_index) == 8
    for job in record["jobs"]:
        trial = study.trials[job["trial"]]
        assert by_index[job["index"]]["config"]["x"] == pytest.approx(trial.params["x"])
    # a completed trial's value is its run's final loss; a pruned run stopped early
    for trial in complete:
        job = next(j for j in record["jobs"] if j["trial"] == trial.number)
        assert by_index[job["index"]]["summary"]["loss"] == pytest.approx(trial.value)
    shown = status(cli, record["id"])
    assert sorted(shown.values()).count("pruned") == len(pruned)
    pruned_runs = [by_index[j["index"]] for j in record["jobs"] if j.get("state") == "pruned"]
    assert all(r["status"] in ("interrupted", "completed") for r in pruned_runs)
    assert any(r["status"] == "interrupted" for r in pruned_runs)
    assert f"best trial {study.best_trial.number}: {study.best_value}" in result.stdout
    assert json.dumps(study.best_params) in result.stdout
