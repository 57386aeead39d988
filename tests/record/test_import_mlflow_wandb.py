"""Metrics an unmodified script logged with MLflow or W&B, read into its run after
`replicator run` (issue 13, item 2), and `replicator import mlflow|wandb DIR`."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from replicator.store import Store
from replicator.store.metrics import read_metrics

from ..conftest import run_cli

# found, not imported: the scripts import them (importing mlflow takes seconds)
for _package in ("mlflow", "wandb"):
    if importlib.util.find_spec(_package) is None:
        pytest.skip(f"{_package} is not installed", allow_module_level=True)

# An unmodified script: MLflow with its default store (MLflow 3: sqlite:///mlflow.db) and W&B
# offline, as a user would write them.
SCRIPT = """
import mlflow, wandb
with mlflow.start_run(run_name="baseline"):
    mlflow.log_param("lr", 0.1)
    for step in range(3):
        mlflow.log_metric("loss", 1 / (step + 1), step=step)
    mlflow.log_metric("val/acc", 0.75, step=2)
run = wandb.init(project="demo", mode="offline", config={"lr": 0.1, "wandb_api_key": "k-123"})
for step in range(3):
    run.log({"reward": step * 2.0, "nested": {"x": 1.5}, "note": "text is skipped"})
run.finish()
"""

# MLflow's file store (./mlruns), then a kill in the middle of a write: the last line is cut.
FILE_STORE_SCRIPT = """
import glob, os, mlflow
mlflow.set_tracking_uri("file:./mlruns")
with mlflow.start_run():
    for step in range(4):
        mlflow.log_metric("loss", 1 / (step + 1), step=step)
(path,) = glob.glob("mlruns/*/*/metrics/loss")
os.truncate(path, os.path.getsize(path) - 3)
"""

_ENV = {"WANDB_SILENT": "true", "WANDB_DIR": "."}


def _new_run(repo: Path, before: set[Path]) -> Path:
    (run_dir,) = set(Store.open(repo).run_dirs()) - before
    return run_dir


def _by_source(run_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for line in read_metrics(run_dir / "metrics.jsonl"):
        curves = out.setdefault(line.get("source", "script"), {})
        curves.setdefault(line["key"], []).append((line["step"], line["value"]))
    return out


@pytest.mark.slow  # MLflow creates its database (seconds), W&B starts its service
def test_mlflow_and_wandb_metrics_join_the_run_and_show(repo: Path) -> None:
    (repo / "train.py").write_text(SCRIPT)
    result = run_cli("run", "--", "python", "train.py", cwd=repo, env=_ENV)
    assert result.returncode == 0, result.stderr
    run_dir = _new_run(repo, set())
    assert (repo / "mlflow.db").exists()  # MLflow 3's default store, read with sqlite3
    curves = _by_source(run_dir)
    assert curves["mlflow"] == {
        "loss": [(0, 1.0), (1, 0.5), (2, 1 / 3)],
        "val/acc": [(2, 0.75)],
    }
    assert curves["wandb"] == {
        "reward": [(0, 0.0), (1, 2.0), (2, 4.0)],
        "nested.x": [(0, 1.5), (1, 1.5), (2, 1.5)],
    }
    shown = run_cli("show", "last", "--json", cwd=repo)
    assert shown.returncode == 0, shown.stderr
    details = json.loads(shown.stdout)
    imports = details["run"]["imports"]
    assert imports["mlflow"]["keys"] == ["loss", "val/acc"]
    assert imports["mlflow"]["files"] == ["mlflow.db"]
    assert imports["wandb"]["keys"] == ["reward", "nested.x"]
    assert details["metrics"]["loss"]["points"] == 3
    text = run_cli("show", "last", cwd=repo).stdout
    assert "reward:" in text and "val/acc:" in text

    # the same files as runs of their own; W&B's config becomes the config, its key redacted
    before = set(Store.open(repo).run_dirs())
    imported = run_cli("import", "wandb", "wandb", "--json", cwd=repo)
    assert imported.returncode == 0, imported.stderr
    (row,) = json.loads(imported.stdout)
    assert row["keys"] == ["reward", "nested.x"] and row["values"] == 6
    made = _new_run(repo, before)
    meta = json.loads((made / "run.json").read_text())
    assert meta["experiment"] == "demo" and meta["status"] == "completed"
    assert meta["config"] == {"lr": 0.1, "wandb_api_key": "<redacted>"}
    assert "k-123" not in "".join(p.read_text() for p in made.rglob("*") if p.is_file())
    before = set(Store.open(repo).run_dirs())
    imported = run_cli("import", "mlflow", ".", cwd=repo)
    assert imported.returncode == 0, imported.stderr
    assert "4 values (loss, val/acc)" in imported.stdout
    meta = json.loads((_new_run(repo, before) / "run.json").read_text())
    assert meta["name"] == "baseline" and meta["config"] == {"lr": "0.1"}  # params are strings

    # a W&B file cut by a kill: imported up to the damage, with a warning
    (wandb_file,) = (repo / "wandb").glob("offline-run-*/run-*.wandb")
    cut = repo / "cut" / wandb_file.parent.name
    cut.mkdir(parents=True)
    data = wandb_file.read_bytes()
    (cut / wandb_file.name).write_bytes(data[: len(data) // 2])
    before = set(Store.open(repo).run_dirs())
    damaged = run_cli("import", "wandb", "cut", "--json", cwd=repo)
    assert damaged.returncode == 0, damaged.stderr
    assert "warning: W&B run" in damaged.stderr and "the file ends inside record" in damaged.stderr
    (row,) = json.loads(damaged.stdout)
    assert row["values"] < 6
    whole = [(m["key"], m["step"], m["value"]) for m in read_metrics(made / "metrics.jsonl")]
    if row["values"]:
        cut_run = _new_run(repo, before)
        part = [(m["key"], m["step"], m["value"]) for m in read_metrics(cut_run / "metrics.jsonl")]
        assert part == whole[: len(part)]  # what was read before the damage, as it was logged


def test_mlflow_file_store_cut_by_a_kill_is_imported_up_to_the_damage(repo: Path) -> None:
    (repo / "train.py").write_text(FILE_STORE_SCRIPT)
    env = {"MLFLOW_ALLOW_FILE_STORE": "true"}
    result = run_cli("run", "--", "python", "train.py", cwd=repo, env=env)
    assert result.returncode == 0, result.stderr
    assert "metrics/loss: line 4 ends without a newline" in result.stderr
    run_dir = _new_run(repo, set())
    assert _by_source(run_dir)["mlflow"] == {"loss": [(0, 1.0), (1, 0.5), (2, 1 / 3)]}
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["imports"]["mlflow"]["problems"]

    # a later run that did not touch ./mlruns imports nothing from it
    before = {run_dir}
    again = run_cli("run", "--", "python", "-c", "print('no logging')", cwd=repo)
    assert again.returncode == 0, again.stderr
    later = _new_run(repo, before)
    assert "mlflow" not in json.loads((later / "run.json").read_text()).get("imports", {})
    assert not (later / "metrics.jsonl").exists() or not _by_source(later)


def test_import_commands_say_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for tool, what in (("mlflow", "no MLflow runs"), ("wandb", "no W&B run files")):
        result = run_cli("import", tool, "empty", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"empty: {what}" in result.stderr
        missing = run_cli("import", tool, "nowhere", cwd=tmp_path)
        assert missing.returncode == 2 and "nowhere: no such directory" in missing.stderr


def test_wandb_files_without_wandb_installed_name_the_extra(tmp_path: Path) -> None:
    # a W&B run folder copied from elsewhere, read where wandb cannot be imported
    folder = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    folder.mkdir(parents=True)
    (folder / "run-abc.wandb").write_bytes(b":W&B\xe1\xbe\x00")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "wandb.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'wandb'\", name='wandb')\n"
    )
    result = run_cli("import", "wandb", "wandb", cwd=tmp_path, env={"PYTHONPATH": str(blocker)})
    assert result.returncode != 0
    assert "pip install 'replicator[wandb]'" in result.stderr
    assert "Traceback" not in result.stderr
    shutil.rmtree(blocker)
