"""Keras 3 with replicator's callback (issue 13, item 4): epoch and batch metrics, the model's
facts and optimizer config, weight checkpoints, in a real `replicator run` (torch backend)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from replicator.store import Store
from replicator.store.metrics import read_metrics

from ..conftest import run_cli

# not imported here: Keras picks its backend at import (the child gets KERAS_BACKEND=torch)
if importlib.util.find_spec("keras") is None:
    pytest.skip("keras is not installed", allow_module_level=True)
pytest.importorskip("torch")
pytestmark = [pytest.mark.slow]

SCRIPT = """
import sys
import numpy as np
import keras
import replicator
from replicator.integrations.keras import ReplicatorCallback

with replicator.start(checkpoints={"monitor": "val_loss", "mode": "min", "keep_best": 2}) as run:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)], name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    callback = ReplicatorCallback(run)
    start = callback.restore(model)
    model.fit(x, y, batch_size=16, epochs=int(sys.argv[1]), validation_split=0.25, verbose=0,
              callbacks=[callback], initial_epoch=start)
    run.summary["first_epoch"] = start
"""

_ENV = {"KERAS_BACKEND": "torch"}


def test_fit_records_metrics_facts_and_weight_checkpoints(repo: Path) -> None:
    (repo / "train.py").write_text(SCRIPT)
    result = run_cli("run", "--", "python", "train.py", "2", cwd=repo, env=_ENV)
    assert result.returncode == 0, result.stderr
    (run_dir,) = Store.open(repo).run_dirs()
    lines = read_metrics(run_dir / "metrics.jsonl")
    # 24 training samples in batches of 16: 2 batches per epoch
    assert [m["step"] for m in lines if m["key"] == "batch/loss"] == [1, 2, 3, 4]
    assert [m["step"] for m in lines if m["key"] == "val_loss"] == [2, 4]
    assert [m["value"] for m in lines if m["key"] == "epoch"] == [1, 2]
    facts = json.loads((run_dir / "config" / "keras.json").read_text())
    assert facts["name"] == "tiny" and facts["backend"] == "torch"
    assert [layer["class"] for layer in facts["layers"]] == ["Dense", "Dense"]
    assert facts["parameters"] == facts["trainable_parameters"] == 4 * 8 + 8 + 8 + 1
    assert facts["optimizer"]["class"] == "Adam"
    assert facts["optimizer"]["learning_rate"] == pytest.approx(0.01)
    assert facts["loss"] == "mse"
    manifest = json.loads((run_dir / "checkpoints" / "manifest.json").read_text())
    saved = manifest["checkpoints"] if isinstance(manifest, dict) else manifest
    assert sorted(c["epoch"] for c in saved) == [1, 2]

    # continued with --resume: the weights come back and fit goes on from epoch 2
    resumed = run_cli("run", "--resume", run_dir.name, "--resume-completed", cwd=repo, env=_ENV)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["first_epoch"] == 2


def test_without_keras_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from replicator.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "keras", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "replicator.integrations.keras", raising=False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'replicator\[keras\]'"):
        importlib.import_module("replicator.integrations.keras")
