"""Report and analysis test helpers: a real store with run directories on disk.

Runs are written file by file in the layout ``replicator.store`` documents (run.json,
summary.json, metrics.jsonl, environment.json, hardware.json), so these tests do not depend on
the recorder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_run(
    store: Path,
    run_id: str,
    *,
    experiment: str = "mlp",
    status: str = "completed",
    seed: int = 0,
    config: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
    metrics: list[dict[str, Any]] | None = None,
    environment: dict[str, Any] | None = None,
    hardware: dict[str, Any] | None = None,
    started: float = 1764165000.0,
) -> Path:
    run = store / "runs" / run_id
    run.mkdir(parents=True)
    meta = {
        "id": run_id,
        "experiment": experiment,
        "name": f"{experiment}-{seed}",
        "status": status,
        "seed": seed,
        "started": started,
        "ended": started + 12.5,
        "config": config or {},
        "exit_code": 0 if status == "completed" else 1,
        "host": "elsewhere",
    }
    (run / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    if metrics is not None:
        lines = "".join(json.dumps(m) + "\n" for m in metrics)
        (run / "metrics.jsonl").write_text(lines, encoding="utf-8")
    if environment is not None:
        (run / "environment.json").write_text(json.dumps(environment), encoding="utf-8")
    if hardware is not None:
        (run / "hardware.json").write_text(json.dumps(hardware), encoding="utf-8")
    return run


def make_experiment(store: Path, *, seeds: int = 5, models: dict[str, float] | None = None) -> Path:
    """Three models x ``seeds`` completed runs with curves, plus one failed and one crashed run."""
    import numpy as np

    models = models or {"linear": 0.80, "mlp": 0.86, "cnn": 0.90}
    rng = np.random.default_rng(7)
    k = 0
    for model, level in models.items():
        for seed in range(seeds):
            acc = float(level + rng.normal(0, 0.01))
            curve = [
                {
                    "step": s,
                    "time": 1.0 + s,
                    "key": "loss",
                    "value": float(np.exp(-s / (5 + level)) + rng.normal(0, 0.02)),
                }
                for s in range(20)
            ]
            curve.append({"step": 19, "time": 30.0, "key": "test_acc", "value": acc})
            write_run(
                store,
                f"20261126-1200{k:02d}-00{k:02x}",
                seed=seed,
                config={"model": model, "optim": {"lr": 0.01}, "seed": seed},
                summary={"test_acc": acc, "loss": curve[-2]["value"]},
                metrics=curve,
                environment={
                    "python": {"version": "3.11.9"},
                    "platform": "Linux-6.1-x86_64",
                    "packages": [{"name": "numpy", "version": "2.0"}],
                },
                hardware={"cpu": {"model": "Test CPU", "count": 2}, "gpus": []},
                started=1764165000.0 + k,
            )
            k += 1
    write_run(
        store,
        f"20261126-1200{k:02d}-00aa",
        status="failed",
        seed=9,
        config={"model": "mlp", "optim": {"lr": 0.01}, "seed": 9},
        summary={},
    )
    write_run(
        store,
        f"20261126-1200{k + 1:02d}-00bb",
        status="crashed",
        seed=8,
        config={"model": "cnn", "optim": {"lr": 0.01}, "seed": 8},
        summary={"test_acc": 0.1},
    )
    return store
