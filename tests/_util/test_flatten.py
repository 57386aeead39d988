"""One ``flatten`` (replicator.config) behind the cards: their text is what it was with their copies."""

from __future__ import annotations

import json
from pathlib import Path

from replicator.cards import checklist
from replicator.config import flatten
from replicator.store import Store


def test_flatten_keeps_lists_and_empty_sections_as_values() -> None:
    data = {"optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "aug": {}, "seed": 1}
    assert flatten(data) == {"optim.lr": 0.1, "optim.betas": [0.9, 0.99], "aug": {}, "seed": 1}
    assert flatten({"acc": 1}, "summary.") == {"summary.acc": 1}


def _write_runs(root: Path) -> None:
    for i, (lr, layers) in enumerate([(0.1, [64, 32]), (0.2, [64, 32]), (0.2, [128])]):
        run_dir = root / "runs" / f"r{i}"
        run_dir.mkdir(parents=True)
        config = {"optim": {"lr": lr}, "layers": layers, "aug": {}, "tags": ["a"], "seed": i}
        meta = {
            "schema_version": 1,
            "id": f"r{i}",
            "experiment": "e",
            "name": None,
            "status": "completed",
            "started": 1.0,
            "ended": 2.0,
            "duration_s": 1.0,
            "exit_code": 0,
            "seed": i,
            "command": ["python", "train.py"],
            "config": config,
        }
        (run_dir / "run.json").write_text(json.dumps(meta))
        summary = {"val": {"acc": 0.5 + i / 10}, "empty": {}, "note": "text"}
        (run_dir / "summary.json").write_text(json.dumps(summary))


def test_checklist_hyperparameters_and_metrics_read_nested_values(tmp_path: Path) -> None:
    _write_runs(tmp_path / "store")
    items = {i.number: i.answer for i in checklist("e", store=Store(tmp_path / "store")).items}
    # Item 16: seed left out, an empty section has no key, lists shown by their items' text.
    assert items[16] == (
        "All hyper-parameters are recorded per run (config.yaml, hparams.csv); 3 keys.\n"
        "Varied across runs: layers in {('128',), ('64', '32')}; optim.lr in {0.1, 0.2}\n"
        "Fixed: tags=('a',)\n"
        "How the best configuration was selected: for the author."
    )
    # Item 19: nested summary values by their dotted names; text and empty sections skipped.
    # (three configs of one seed each: the card describes one of them, see item 17)
    assert items[19] == "- val.acc: 0.7 (single run, n=1)"
