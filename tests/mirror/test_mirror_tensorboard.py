"""The TensorBoard sink: event files read back with TensorBoard's own EventAccumulator, after a
real `replicator run --mirror tensorboard`, and across a failed run resumed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ..conftest import git, run_cli

pytest.importorskip("tensorboard")

TRAIN = """\
import replicator
cfg = {"optim": {"lr": 0.1, "name": "sgd"}, "layers": [64, 64]}
with replicator.start(cfg) as run:
    for step in range(30):
        run.log({"train/loss": 1.0 / (step + 1), "acc": step / 30}, step=step)
    run.summary["best_acc"] = 0.97
"""

# prints its metrics; crashes after step 4 unless resumed (then goes on from step 3)
PRINTS = """\
import os, sys
first = 3 if os.path.exists("resumed") else 0
for step in range(first, 8 if first else 5):
    print(f"step {step} | loss {10 * (first + 1) + step}", flush=True)
sys.exit(0 if first else 1)
"""
PATTERN = r"step (?P<step>\d+) \| loss (?P<loss>[0-9.]+)"


def _accumulate(folder: Path):  # type: ignore[no-untyped-def]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def _commit(repo: Path, name: str, text: str) -> None:
    (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", name)


def test_event_files_hold_the_scalars_config_and_tags(repo: Path) -> None:
    _commit(repo, "train.py", TRAIN)
    done = run_cli("run", "--mirror", "tensorboard", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    (run_dir,) = (repo / ".replicator" / "runs").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    events = _accumulate(run_dir / "mirror" / "tensorboard")
    scalars = events.Tags()["scalars"]
    assert sorted(scalars) == ["acc", "train/loss"]
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(30))
    assert [e.value for e in loss] == pytest.approx([1.0 / (s + 1) for s in range(30)])
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    times = [m["time"] for m in logged if m["key"] == "train/loss"]
    assert [e.wall_time for e in loss] == pytest.approx(times)

    def text(tag: str) -> str:
        (event,) = events.Tensors(tag)
        return event.tensor_proto.string_val[0].decode()

    assert f"| commit | {meta['code']['commit']} |" in text("replicator/tags")
    assert f"| config_hash | {meta['config_hash']} |" in text("replicator/tags")
    assert f"| seed | {meta['seed']} |" in text("replicator/tags")
    config = json.loads(text("replicator/config").strip("`\n"))
    assert config == {**meta["config"], "seed": meta["seed"]}
    assert "| best_acc | 0.97 |" in text("replicator/summary")
    assert text("replicator/status") == "completed"
    # the config is in the HParams tab too
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    content = events.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["optim.lr"].number_value == 0.1
    assert start.hparams["optim.name"].string_value == "sgd"
    assert start.hparams["layers"].string_value == "[64, 64]"


def test_resumed_run_goes_on_in_the_same_folder_and_drops_superseded_values(repo: Path) -> None:
    _commit(repo, "p.py", PRINTS)
    args = ["--metric-pattern", PATTERN, "--mirror", "tensorboard"]
    first = run_cli("run", *args, "--", sys.executable, "p.py")
    assert first.returncode == 1, first.stderr
    (run_dir,) = (repo / ".replicator" / "runs").iterdir()
    folder = run_dir / "mirror" / "tensorboard"
    before = _accumulate(folder)
    assert [(e.step, e.value) for e in before.Scalars("loss")] == [(s, 10 + s) for s in range(5)]

    (repo / "resumed").write_text("")
    resumed = run_cli("run", "--resume", run_dir.name)  # no --mirror: the run's sinks go on
    assert resumed.returncode == 0, resumed.stderr
    state = json.loads((run_dir / "mirrors.json").read_text())["tensorboard"]
    assert (state["status"], state["sent_points"]) == ("ok", 10)
    assert len(list(folder.glob("events.out.tfevents.*"))) == 2
    after = _accumulate(folder)
    # steps 3 and 4 of the crashed session are superseded by the resumed one's
    expected = [(0, 10), (1, 11), (2, 12)] + [(s, 40 + s) for s in range(3, 8)]
    assert [(e.step, e.value) for e in after.Scalars("loss")] == expected


def test_a_log_dir_under_the_working_directory_is_not_imported_back(repo: Path) -> None:
    """The sink's own event files, written under the working directory during the run, are not
    the command's TensorBoard log: the import after the run leaves them alone."""
    # the run lasts past the sink's first flush, so its event file has content when it ends
    _commit(repo, "train.py", TRAIN + "import time\ntime.sleep(3)\n")
    (repo / "replicator.yaml").write_text("mirror:\n  tensorboard: {log_dir: tb}\n")
    done = run_cli("run", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    (run_dir,) = (repo / ".replicator" / "runs").iterdir()
    assert list((repo / "tb").rglob("events.out.tfevents.*"))  # the sink wrote under cwd
    meta = json.loads((run_dir / "run.json").read_text())
    assert "tensorboard" not in (meta.get("imports") or {}), meta.get("imports")
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert not [m for m in logged if m.get("source") == "tensorboard"]
    assert "replicator/summary" not in {m["key"] for m in logged}
