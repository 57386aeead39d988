"""Store DataFrames (store/frames.py): load_runs / load_metrics over a real store on disk."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from replicator.errors import QueryError, UsageError
from replicator.stats._common import column
from replicator.store import Store
from replicator.store.frames import flatten, load_metrics, load_runs

from ..report.report_fixtures import write_run


def test_load_runs_one_row_per_completed_run(experiment_store: Path) -> None:
    df = load_runs(experiment="mlp")
    assert len(df) == 15 and set(df["status"]) == {"completed"}
    assert list(df.columns[:9]) == [
        "id",
        "experiment",
        "name",
        "status",
        "seed",
        "started",
        "ended",
        "duration",
        "dir",
    ]
    assert {"config.model", "config.optim.lr", "summary.test_acc", "summary.loss"} <= set(
        df.columns
    )
    assert str(df["started"].dt.tz) == "UTC" and df["duration"].iloc[0] == pytest.approx(12.5)
    assert df["seed"].dtype == "Int64"
    every = load_runs(experiment="mlp", status=None)
    assert len(every) == 17 and set(every["status"]) == {"completed", "failed", "crashed"}
    assert len(load_runs(experiment="other")) == 0
    # the statistics find a bare metric name under its summary. column
    assert column(df, "test_acc", prefixes=("summary.",)) == "summary.test_acc"
    with pytest.raises(UsageError, match=r"No column 'f1' \(tried f1, summary\.f1\)"):
        column(df, "f1", prefixes=("summary.",))


def test_where_expressions_and_callables(experiment_store: Path) -> None:
    df = load_runs(where="config.model == 'cnn' and summary.test_acc > 0.5")
    assert set(df["config.model"]) == {"cnn"} and len(df) == 5
    df = load_runs(where=lambda r: r["seed"] in (0, 1))
    assert sorted(df["seed"].unique()) == [0, 1]
    with pytest.raises(QueryError, match="not a valid expression"):
        load_runs(where="config.model ==")


def test_store_argument_and_flatten(tmp_path: Path) -> None:
    store = tmp_path / "elsewhere"
    write_run(
        store,
        "r1",
        config={"a": {"b": 1, "c": {}}, "l": [1, 2]},
        summary={"acc": 0.5, "x": {"y": 2}},
    )
    df = load_runs(store=store)
    row = df.iloc[0]
    assert row["config.a.b"] == 1 and row["config.l"] == [1, 2] and row["config.a.c"] == {}
    assert row["summary.x.y"] == 2
    assert load_runs(store=Store(store)).shape == df.shape
    assert flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}


def test_load_metrics_tidy_superseded_nonfinite_and_torn_lines(tmp_path: Path) -> None:
    store = tmp_path / "s"
    run = write_run(
        store,
        "r1",
        metrics=[
            {"step": 0, "time": 1.0, "key": "loss", "value": 1.0},
            {"step": 1, "time": 2.0, "key": "loss", "value": 0.9, "superseded": True},
            {"step": 1, "time": 3.0, "key": "loss", "value": 0.8},
            {"step": 2, "time": 4.0, "key": "loss", "value": "NaN"},
            {"step": 3, "time": 5.0, "key": "loss", "value": "-Infinity"},
            {"step": 3, "time": 5.0, "key": "acc", "value": "Infinity"},
        ],
    )
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 4, "time": 6.0, "key": "lo')  # a crash tore the last line
    m = load_metrics(store=store)
    assert list(m.columns) == ["run", "step", "key", "value", "time"]
    loss = m[m["key"] == "loss"]
    assert list(loss["step"]) == [0, 1, 2, 3] and loss["value"].iloc[1] == 0.8
    assert math.isnan(loss["value"].iloc[2]) and loss["value"].iloc[3] == -math.inf
    assert m[m["key"] == "acc"]["value"].iloc[0] == math.inf
    assert len(load_metrics(store=store, superseded=True, keys="loss")) == 5
    runs = load_runs(store=store)
    assert len(load_metrics(runs=runs, keys=["acc"])) == 1
    assert len(load_metrics(store=store, runs=["r1"])) == 5


def test_damaged_run_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = tmp_path / "s"
    write_run(store, "good", summary={"acc": 1.0})
    bad = store / "runs" / "bad"
    bad.mkdir(parents=True)
    (bad / "run.json").write_text("{not json", encoding="utf-8")
    with pytest.warns(RuntimeWarning, match="bad/run.json is damaged"):
        df = load_runs(store=store)
    assert list(df["id"]) == ["good"]
    assert json.loads((store / "runs" / "good" / "run.json").read_text())["id"] == "good"
    with pytest.warns(RuntimeWarning, match="damaged"):
        assert isinstance(load_metrics(store=store), pd.DataFrame)


def test_load_metrics_drops_lines_a_resume_superseded(tmp_path: Path) -> None:
    import json

    write_run(tmp_path / "s", "r1", config={}, summary={})
    metrics = tmp_path / "s" / "runs" / "r1" / "metrics.jsonl"
    lines = [{"step": s, "time": 1.0, "key": "loss", "value": float(s)} for s in range(4)]
    lines.insert(4, {"event": "resume", "step": 1})
    lines.append({"step": 2, "time": 2.0, "key": "loss", "value": 20.0})
    metrics.write_text("".join(json.dumps(x) + "\n" for x in lines))
    df = load_metrics(store=tmp_path / "s")
    assert list(zip(df["step"], df["value"])) == [(0, 0.0), (1, 1.0), (2, 20.0)]
    everything = load_metrics(store=tmp_path / "s", superseded=True)
    assert len(everything) == 5
