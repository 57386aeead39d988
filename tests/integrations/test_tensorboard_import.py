"""Metrics an unmodified script wrote for TensorBoard, imported into its run after
`replicator run` (issue 13, item 2), and `replicator import tensorboard DIR`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from replicator.store import Store
from replicator.store.metrics import read_metrics

from ..conftest import git, run_cli

pytest.importorskip("tensorboard")

# An unmodified training script that logs with PyTorch's SummaryWriter (as karpathy/makemore).
TORCH_SCRIPT = """
from torch.utils.tensorboard import SummaryWriter
writer = SummaryWriter()  # runs/<date>_<host>/
for step in range(20):
    writer.add_scalar("loss/train", 1 / (step + 1), step)
    if step % 5 == 0:
        writer.add_scalar("loss/val", 2 / (step + 1), step)
writer.close()
"""

# The same with TensorBoard's own writer (what SummaryWriter writes through), one per split.
TB_SCRIPT = """
import sys
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
for split, scale in (("train", 1.0), ("val", 2.0)):
    writer = EventFileWriter(f"logs/{split}")
    for step in range(10):
        value = Summary.Value(tag="loss", simple_value=scale / (step + 1))
        writer.add_event(Event(wall_time=1000.0 + step, step=step, summary=Summary(value=[value])))
    writer.close()
if "--cut" in sys.argv:  # killed in the middle of a write: the file ends inside a record
    import glob, os
    (path,) = glob.glob("logs/val/events.out.tfevents.*")
    os.truncate(path, os.path.getsize(path) - 7)
"""


def _run(repo: Path, *command: str, options: tuple[str, ...] = ()) -> Path:
    """`replicator run` of ``command``; the launcher imports TensorBoard scalars as it ends."""
    result = run_cli("run", *options, "--", *command, cwd=repo)
    assert result.returncode == 0, result.stderr
    (run_dir,) = [d for d in Store.open(repo).run_dirs() if not _seen(d)]
    return run_dir


_SEEN: set[Path] = set()


def _seen(run_dir: Path) -> bool:
    if run_dir in _SEEN:
        return True
    _SEEN.add(run_dir)
    return False


def _curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {}
    for line in read_metrics(run_dir / "metrics.jsonl"):
        assert line["source"] == "tensorboard"
        curves.setdefault(line["key"], []).append((line["step"], line["value"]))
    return curves


def test_a_summarywriter_script_gets_its_curves(repo: Path) -> None:
    pytest.importorskip("torch")
    (repo / "train.py").write_text(TORCH_SCRIPT)
    run_dir = _run(repo, "python", "train.py")

    curves = _curves(run_dir)
    assert curves["loss/train"] == [(s, pytest.approx(1 / (s + 1))) for s in range(20)]
    assert curves["loss/val"] == [(s, pytest.approx(2 / (s + 1))) for s in (0, 5, 10, 15)]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == {"loss/train": pytest.approx(1 / 20), "loss/val": pytest.approx(2 / 16)}
    imports = json.loads((run_dir / "run.json").read_text())["imports"]["tensorboard"]
    assert imports["values"] == 24 and imports["files"][0].startswith("runs/")


def test_splits_become_prefixed_keys_and_old_files_are_left_alone(repo: Path) -> None:
    (repo / "train.py").write_text(TB_SCRIPT)
    first = _run(repo, "python", "train.py")
    second = _run(repo, "python", "-c", "print('no tensorboard this time')")

    curves = _curves(first)
    assert sorted(curves) == ["train/loss", "val/loss"]
    assert curves["val/loss"][-1] == (9, pytest.approx(0.2))
    # the first run's event files were there before the second started: not its metrics
    assert not (second / "metrics.jsonl").exists()


def test_a_truncated_event_file_is_imported_up_to_the_damage_with_a_warning(repo: Path) -> None:
    (repo / "train.py").write_text(TB_SCRIPT)
    result = run_cli("run", "--", "python", "train.py", "--cut", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "ends inside record 11" in result.stderr  # the warning, on the terminal
    (run_dir,) = Store.open(repo).run_dirs()
    curves = _curves(run_dir)
    assert len(curves["train/loss"]) == 10
    assert [s for s, _ in curves["val/loss"]] == list(range(9))
    problems = json.loads((run_dir / "run.json").read_text())["imports"]["tensorboard"]["problems"]
    assert "imported the 9 value(s) before it" in problems[0]


def test_keys_the_script_logged_itself_are_not_imported_twice(repo: Path) -> None:
    (repo / "train.py").write_text(
        "import replicator\n"
        "with replicator.start() as run:\n"
        "    run.log({'val/loss': 7.0}, step=0)\n" + TB_SCRIPT
    )
    run_dir = _run(repo, "python", "train.py")
    lines = read_metrics(run_dir / "metrics.jsonl")
    assert [(x["value"], x.get("source")) for x in lines if x["key"] == "val/loss"] == [(7.0, None)]
    assert len([x for x in lines if x["key"] == "train/loss"]) == 10


def test_tensorboard_dir_narrows_the_search(repo: Path) -> None:
    (repo / "train.py").write_text(TB_SCRIPT)
    run_dir = _run(repo, "python", "train.py", options=("--tensorboard-dir", "logs/val"))
    assert sorted(_curves(run_dir)) == ["loss"]


def test_replicator_run_then_show_shows_the_summarywriter_curves(repo: Path) -> None:
    """The whole path: an unmodified SummaryWriter script, then `replicator show`."""
    pytest.importorskip("torch")
    (repo / "train.py").write_text(TORCH_SCRIPT)
    result = run_cli("run", "--", "python", "train.py", cwd=repo)
    assert result.returncode == 0, result.stderr
    shown = run_cli("show", "last", cwd=repo)
    assert shown.returncode == 0, shown.stderr
    assert (
        "loss/train:" in shown.stdout
        and "(20 points, steps 0..19, from tensorboard)" in shown.stdout
    )
    assert (
        "loss/val:" in shown.stdout and "(4 points, steps 0..15, from tensorboard)" in shown.stdout
    )

    (repo / "train.py").write_text(TB_SCRIPT)
    result = run_cli("run", "--", "python", "train.py", "--cut", cwd=repo)
    assert result.returncode == 0
    assert "ends inside record 11" in result.stderr


# ------------------------------------------------------------- replicator import tensorboard
def test_import_command_creates_one_run_per_folder(repo: Path) -> None:
    (repo / "train.py").write_text(TB_SCRIPT)
    assert run_cli("run", "--", "python", "train.py", cwd=repo).returncode == 0
    before = set(Store.open(repo).run_dirs())

    result = run_cli("import", "tensorboard", "logs", "--experiment", "old", cwd=repo)

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("imported 2 run(s) from logs")
    runs = [Store.open(repo).get(d.name) for d in set(Store.open(repo).run_dirs()) - before]
    by_name = {r.meta["name"]: r for r in runs}
    assert sorted(by_name) == ["train", "val"]
    val = by_name["val"]
    assert val.status == "completed" and val.meta["experiment"] == "old"
    assert val.meta["source"] == {"tool": "tensorboard", "dir": str(repo / "logs" / "val")}
    assert val.meta["code"]["commit"] == git(repo, "rev-parse", "HEAD")
    assert not (val.dir / "code.patch").exists()
    assert (val.meta["started"], val.meta["ended"]) == (1000.0, 1009.0)
    assert [x["value"] for x in read_metrics(val.dir / "metrics.jsonl")][-1] == pytest.approx(0.2)
    shown = run_cli("show", val.id, cwd=repo)
    assert "(10 points, steps 0..9, from tensorboard)" in shown.stdout


def test_import_command_without_event_files_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("import", "tensorboard", "empty", cwd=tmp_path)
    assert result.returncode == 2
    assert "empty: no TensorBoard event files (events.out.tfevents.*) in it" in result.stderr
    missing = run_cli("import", "tensorboard", "nowhere", cwd=tmp_path)
    assert missing.returncode == 2 and "nowhere: no such directory" in missing.stderr


def test_import_command_imports_a_truncated_file_up_to_the_damage(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "train.py").write_text(TB_SCRIPT)
    subprocess.run([sys.executable, "train.py", "--cut"], cwd=tmp_path, check=True)

    result = run_cli("import", "tensorboard", "logs", "--json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "warning: TensorBoard event file" in result.stderr
    assert "ends inside record 11" in result.stderr
    assert "imported the 9 value(s) before it" in result.stderr
    values = {Path(row["source"]).name: row["values"] for row in json.loads(result.stdout)}
    assert values == {"train": 10, "val": 9}


def test_import_command_outside_git_captures_no_code(tmp_path: Path) -> None:
    os.makedirs(tmp_path / "p")
    (tmp_path / "p" / "train.py").write_text(TB_SCRIPT)
    import subprocess
    import sys

    subprocess.run([sys.executable, "train.py"], cwd=tmp_path / "p", check=True)
    time.sleep(0)
    result = run_cli("import", "tensorboard", "logs/train", "--json", cwd=tmp_path / "p")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["values"] == 10 and row["keys"] == ["loss"]
    record = Store.open(tmp_path / "p").get(row["id"])
    assert record.meta["code"]["repo"] is None
