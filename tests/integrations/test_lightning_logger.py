"""Lightning's Trainer with `logger=ReplicatorLogger()` and no callback (issue 13, item 4): what
the module logs and its hyperparameters reach the run of `replicator run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replicator.store import Store
from replicator.store.metrics import read_metrics

from ..conftest import run_cli

pytest.importorskip("lightning")
pytestmark = [pytest.mark.slow]

# An ordinary Lightning script: no replicator.start(), only the logger.
SCRIPT = """
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset
from replicator.integrations.lightning import ReplicatorLogger

class Net(LightningModule):
    def __init__(self, lr: float = 0.05, width: int = 8):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Linear(width, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
trainer = Trainer(max_epochs=2, accelerator="cpu", logger=ReplicatorLogger(), log_every_n_steps=1,
                  enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False)
trainer.fit(Net(), data, data)
"""


def test_trainer_with_the_logger_alone_records_metrics_and_hparams(repo: Path) -> None:
    (repo / "train.py").write_text(SCRIPT)
    result = run_cli("run", "--", "python", "train.py", cwd=repo)
    assert result.returncode == 0, result.stderr
    (run_dir,) = Store.open(repo).run_dirs()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "completed"
    lines = read_metrics(run_dir / "metrics.jsonl")
    train = [m["step"] for m in lines if m["key"] == "train_loss"]
    assert train == [0, 1, 2, 3]  # 2 batches x 2 epochs, at Lightning's global step
    val = [m["step"] for m in lines if m["key"] == "val_loss"]
    assert val == [1, 3]  # after each epoch
    assert {m["value"] for m in lines if m["key"] == "epoch"} == {0.0, 1.0}
    hparams = json.loads((run_dir / "config" / "lightning_hparams.json").read_text())
    assert hparams == {"module": {"lr": 0.05, "width": 8}}
    shown = run_cli("show", "last", cwd=repo)
    assert "train_loss:" in shown.stdout and "val_loss:" in shown.stdout


def test_without_lightning_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from replicator.errors import MissingDependencyError

    for name in ("lightning", "lightning.pytorch"):  # as if it were not installed
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "replicator.integrations.lightning", raising=False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'replicator\[lightning\]'"):
        importlib.import_module("replicator.integrations.lightning")
