"""A Hydra app with its default timestamped run folders and a Lightning checkpoint, reproduced.

The original writes under logs/train/runs/<date>_<time>/ in the project, the reproduction under
another <date>_<time>/ in a temporary checkout: the files are paired by their place in the run
folder, the checkpoint (whose hyperparameters and callback state hold those paths) is compared by
its tensors, and Hydra's config dumps and log are reported without deciding.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from repro_helpers import git

from replicator.reproduce import reproduce

pytestmark = [pytest.mark.slow]

CONFIG = """\
seed: 3
epochs: 2
scale_file: SCALE_FILE
data_dir: ${hydra:runtime.cwd}/data
hydra:
  run:
    dir: logs/train/runs/${now:%Y-%m-%d}_${now:%H-%M-%S}
"""

APP = '''\
"""A tiny Lightning model trained by a Hydra app that never imports replicator."""
import json
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger


class Tiny(L.LightningModule):
    def __init__(self, data_dir: str, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg) -> None:
    L.seed_everything(cfg.seed)
    out = Path(HydraConfig.get().runtime.output_dir)
    scale = float(Path(cfg.scale_file).read_text())
    x = torch.randn(32, 4)
    y = scale * x.sum(dim=1, keepdim=True)
    data = torch.utils.data.TensorDataset(x, y)
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        accelerator="cpu",
        logger=CSVLogger(out, name="csv", version=0),
        callbacks=[ModelCheckpoint(dirpath=out / "checkpoints", save_last=True)],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
    )
    trainer.fit(Tiny(str(cfg.data_dir)), torch.utils.data.DataLoader(data, batch_size=8))
    loss = float(trainer.callback_metrics["train_loss"])
    (out / "metrics.json").write_text(json.dumps({"train_loss": loss}))


if __name__ == "__main__":
    main()
'''

RUN = "logs/train/runs/<time>"


@pytest.fixture
def hydra_project(project: Path, tmp_path: Path) -> Path:
    pytest.importorskip("hydra")
    pytest.importorskip("lightning")
    scale = tmp_path / "outside" / "scale.txt"  # read from outside the repository
    scale.parent.mkdir()
    scale.write_text("1.0\n")
    (project / "configs").mkdir()
    (project / "configs" / "train.yaml").write_text(CONFIG.replace("SCALE_FILE", str(scale)))
    (project / "train.py").write_text(APP)
    (project / ".gitignore").write_text("logs/\ndata/\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "hydra app")
    return scale


def test_hydra_lightning_run_reproduces_and_a_planted_difference_is_named(
    project: Path, hydra_project: Path, record, cli
) -> None:
    run_id = record(Path(sys.executable))

    result = reproduce(run_id, env="current", stdout=io.BytesIO(), stderr=io.BytesIO())

    assert result.verdict == "reproduced", "\n".join(map(str, result.checks)) + result.decided_by
    checks = {c.name: c for c in result.checks if c.kind == "output"}
    ckpt = checks[f"{RUN}/checkpoints/last.ckpt"]
    # the original's checkpoint holds the project's path and its run folder's time
    assert ckpt.status == "equivalent" and ckpt.role == "result"
    assert "differs only in embedded paths or timestamps" in ckpt.detail
    assert "callbacks.ModelCheckpoint" in ckpt.detail and "_path" in ckpt.detail
    assert checks[f"{RUN}/csv/version_0/metrics.csv"].status == "exact"
    assert checks[f"{RUN}/metrics.json"].status == "exact"
    hydra_dump = checks[f"{RUN}/.hydra/hydra.yaml"]
    assert hydra_dump.role == "log" and hydra_dump.status == "equivalent"
    assert checks[f"{RUN}/train.log"].role == "log"
    assert not any(c.status == "missing" for c in result.checks)
    assert "output files matched" in result.decided_by

    # a planted real difference: the file the app reads from outside the repository changed
    hydra_project.write_text("2.0\n")
    out = cli("reproduce", run_id, "--env", "current", "--json", timeout=300)
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "not reproduced"
    failed = {c["name"]: c for c in data["checks"] if c["status"] == "mismatch"}
    assert "a real difference: state_dict.layer" in failed[f"{RUN}/checkpoints/last.ckpt"]["detail"]
    assert f"output {RUN}/checkpoints/last.ckpt: a real difference" in data["decided_by"]
    assert f"output {RUN}/metrics.json" in data["decided_by"]
    assert ".hydra" not in data["decided_by"].split("; ")[0]
