"""run.checkpoint / run.load_checkpoint in plain Python: start(resume=RUN) continues the record."""

from __future__ import annotations

import json

import numpy as np
import pytest

import replicator
from replicator.checkpoints import describe_checkpoints
from replicator.errors import UsageError
from replicator.store.metrics import read_metrics


@pytest.mark.filterwarnings("ignore:PYTHONHASHSEED")
def test_start_resume_continues_from_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    options = {"monitor": "acc", "mode": "max", "keep_best": 2, "keep_last": 1}
    run = replicator.start(store=store, seed=5, checkpoints=options)
    for step in range(1, 6):
        run.log({"x": float(np.random.rand())}, step=step)
        if step <= 3:
            run.checkpoint({"w": np.full(2, step)}, step=step, metrics={"acc": step / 10})
    run.finish("failed", error="simulated crash")
    run_id, run_dir = run.id, run.dir

    resumed = replicator.start(store=store, resume=run_id, checkpoints=options)
    assert resumed.resumed and resumed.dir == run_dir
    ckpt = resumed.load_checkpoint()
    assert ckpt.step == 3 and (ckpt.state["w"] == 3).all()
    for step in range(4, 7):
        resumed.log({"x": float(np.random.rand())}, step=step)
    resumed.finish()

    history = read_metrics(run_dir / "metrics.jsonl")
    assert [e["step"] for e in history] == [1, 2, 3, 4, 5, 6]
    everything = read_metrics(run_dir / "metrics.jsonl", include_superseded=True)
    old = [e for e in everything if e.get("superseded")]
    assert [e["step"] for e in old] == [4, 5]
    # numpy's global stream was restored: steps 4 and 5 drew the same values again
    assert [e["value"] for e in old] == [e["value"] for e in history[3:5]]
    statuses = [
        json.loads(x)["status"] for x in (run_dir / "status.jsonl").read_text().splitlines()
    ]
    assert statuses == ["running", "failed", "running", "completed"]
    rows = describe_checkpoints(run_dir)
    assert [(r["step"], r["roles"]) for r in rows] == [(2, ["best2"]), (3, ["latest", "best1"])]


def test_run_rng_is_saved_and_continues_after_resume(tmp_path) -> None:
    import numpy as np

    import replicator

    store = tmp_path / "store"
    with replicator.start({}, seed=4, store=store) as run:
        run.rng.random(3)
        run.checkpoint({"w": np.zeros(2)}, step=1)
        expected = run.rng.random(3)
        run_id = run.id
    with replicator.start({}, resume=run_id, store=store, resume_completed=True) as again:
        assert again.resumed
        ckpt = again.load_checkpoint()
        assert ckpt is not None and ckpt.step == 1
        assert np.array_equal(again.rng.random(3), expected)
    # a run that never touched run.rng loads a checkpoint that has it, and the other way round
    with replicator.start({}, seed=5, store=store) as plain:
        plain.checkpoint({"w": np.zeros(2)}, step=1)
        plain_id = plain.id
    with pytest.raises(UsageError, match=r"completed; resuming it would rewrite"):
        replicator.start({}, resume=plain_id, store=store)
    with replicator.start({}, resume=plain_id, store=store, resume_completed=True) as again:
        assert again.load_checkpoint() is not None
