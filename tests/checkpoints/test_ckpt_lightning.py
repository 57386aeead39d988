"""The Lightning callback: metrics and hyperparameters recorded, checkpoints with RNG state, and
a resumed fit that ends with the same weights as an uninterrupted one."""

from __future__ import annotations

import json

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:PYTHONHASHSEED"),
]


def _fit(run, max_epochs, ckpt_path=None):
    import torch
    from lightning.pytorch import LightningModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset

    from replicator.integrations.lightning import ReplicatorCallback, ReplicatorCheckpointIO

    class Net(LightningModule):
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1)
            )

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = TensorDataset(x, x.sum(1, keepdim=True))
    model = Net()
    callback = ReplicatorCallback(run)
    trainer = Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        callbacks=[callback],
        plugins=[ReplicatorCheckpointIO(run)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    trainer.fit(
        model,
        DataLoader(data, batch_size=8, shuffle=True),
        DataLoader(data, batch_size=16),
        ckpt_path=ckpt_path or callback.resume_path(),
    )
    return model, trainer


def test_lightning_fit_resumes_exactly(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("lightning")
    import replicator
    from replicator.checkpoints import describe_checkpoints
    from replicator.store.metrics import read_metrics

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    options = {"monitor": "val_loss", "mode": "min", "keep_best": 2, "keep_last": 1}
    with replicator.start(store=store, seed=11, checkpoints=options) as run:
        reference, _ = _fit(run, 4)

    run = replicator.start(store=store, seed=11, checkpoints=options)
    _fit(run, 2)
    run.finish("interrupted")
    with replicator.start(store=store, resume=run.id, checkpoints=options) as resumed:
        model, trainer = _fit(resumed, 4)
    assert trainer.global_step == 16
    for want, got in zip(reference.state_dict().values(), model.state_dict().values()):
        assert torch.equal(want, got)

    rows = describe_checkpoints(run.dir)
    assert rows[-1]["step"] == 16 and "latest" in rows[-1]["roles"]
    assert any(r["roles"][0].startswith("best") for r in rows)
    steps = sorted({e["step"] for e in read_metrics(run.dir / "metrics.jsonl")})
    assert steps == list(range(1, 17))
    hparams = json.loads((run.dir / "config" / "lightning_hparams.json").read_text())
    assert hparams["module"] == {"lr": 0.05}

    # trainer.save_checkpoint(path) goes through the plugin: a safe file, readable back.
    from replicator.checkpoints import read_checkpoint

    trainer.save_checkpoint(tmp_path / "manual.ckpt")
    state = read_checkpoint(tmp_path / "manual.ckpt").state
    assert state["global_step"] == 16
    assert torch.equal(state["state_dict"]["net.0.weight"], model.net[0].weight.detach())
