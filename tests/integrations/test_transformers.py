"""Hugging Face's Trainer with replicator's callback (issue 13, item 4): metrics, settings
without tokens, checkpoints with RNG state, and a SIGKILL then `replicator run --resume` that
ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from replicator.store import Store
from replicator.store.metrics import iter_jsonl, read_metrics

from ..conftest import run_cli

# found, not imported: importing transformers takes seconds, paid only by the tests that run
for _package in ("transformers", "accelerate", "torch"):  # the Trainer needs accelerate
    if importlib.util.find_spec(_package) is None:
        pytest.skip(f"{_package} is not installed", allow_module_level=True)

# A tiny BERT built by the script (no download), on a dataset of tensors; dropout is on, so a
# resume that did not restore the RNG streams would draw other masks and other losses.
SCRIPT = """
import os, signal, sys
import torch
import replicator
from replicator.integrations.transformers import ReplicatorCallback
from transformers import (BertConfig, BertForSequenceClassification, Trainer, TrainerCallback,
                          TrainingArguments)

class KillAt(TrainerCallback):  # SIGKILL after the checkpoint of step 4, once
    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 4 and "--kill" in sys.argv and not os.path.exists("killed"):
            open("killed", "w").close()
            os.kill(os.getpid(), signal.SIGKILL)

with replicator.start() as run:
    torch.manual_seed(run.seed)
    config = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=2)
    model = BertForSequenceClassification(config)
    g = torch.Generator().manual_seed(1)
    data = [{"input_ids": torch.randint(0, 32, (8,), generator=g), "labels": i % 2}
            for i in range(24)]
    args = TrainingArguments(output_dir="out", max_steps=6, per_device_train_batch_size=4,
                             logging_steps=1, save_steps=2, report_to=[], use_cpu=True,
                             seed=run.seed, hub_token="hf_NotARealTokenButSecret123",
                             disable_tqdm=True, learning_rate=1e-2)
    callback = ReplicatorCallback(run)
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback, KillAt()])
    trainer.train(resume_from_checkpoint=callback.resume_path())
"""

_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


def _losses(run_dir: Path) -> list[tuple[int, float]]:
    return [
        (m["step"], m["value"])
        for m in read_metrics(run_dir / "metrics.jsonl")
        if m.get("key") == "loss"
    ]


@pytest.mark.slow  # three Trainer processes: importing transformers takes seconds each
def test_trainer_killed_and_resumed_ends_like_an_uninterrupted_run(repo: Path) -> None:
    (repo / "train.py").write_text(SCRIPT)
    killed = run_cli("run", "--seed", "7", "--", "python", "train.py", "--kill", cwd=repo, env=_ENV)
    assert killed.returncode != 0 and (repo / "killed").exists(), killed.stderr
    (run_dir,) = Store.open(repo).run_dirs()
    run_id = run_dir.name
    assert [s for s, _ in _losses(run_dir)] == [1, 2, 3, 4]  # the kill came before step 5

    resumed = run_cli("run", "--resume", run_id, cwd=repo, env=_ENV)
    assert resumed.returncode == 0, resumed.stderr
    whole = run_cli("run", "--seed", "7", "--", "python", "train.py", cwd=repo, env=_ENV)
    assert whole.returncode == 0, whole.stderr
    (reference,) = [d for d in Store.open(repo).run_dirs() if d.name != run_id]

    # the same losses at every step (dropout included), the same final weights
    assert _losses(run_dir) == _losses(reference)
    assert [s for s, _ in _losses(run_dir)] == [1, 2, 3, 4, 5, 6]
    lines = list(iter_jsonl(run_dir / "metrics.jsonl"))
    assert any(line.get("event") == "resume" and line["step"] == 4 for line in lines)
    loss_lines = [line["step"] for line in lines if line.get("key") == "loss"]
    assert loss_lines == [1, 2, 3, 4, 5, 6]  # resumed at step 4: steps 1-4 were not redone

    from replicator.checkpoints import read_checkpoint

    def final_weights(folder: Path) -> dict[str, list[float]]:
        (latest,) = sorted((folder / "checkpoints").glob("step000000006-*.safetensors"))
        state = read_checkpoint(latest).state
        return {k: v.flatten().tolist() for k, v in state["model"].items()}

    assert final_weights(run_dir) == final_weights(reference)

    # the Trainer's settings, without the hub token
    recorded = json.loads((run_dir / "config" / "transformers.json").read_text())
    assert recorded["training_args"]["max_steps"] == 6
    assert recorded["model_config"]["hidden_size"] == 8
    assert "hub_token" not in recorded["training_args"]
    everything = "".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())
    assert "hf_NotARealTokenButSecret123" not in everything


def test_the_callback_outside_a_run_says_what_to_do(tmp_path: Path) -> None:
    from replicator.errors import UsageError
    from replicator.integrations.transformers import ReplicatorCallback

    with pytest.raises(UsageError, match=r"needs a run: create it inside `with replicator.start"):
        ReplicatorCallback().resume_path()


def test_without_transformers_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from replicator.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "replicator.integrations.transformers", raising=False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'replicator\[transformers\]'"):
        importlib.import_module("replicator.integrations.transformers")
