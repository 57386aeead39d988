"""A logged value is the value at the call, and nothing logged stops the metrics writer.

Real scripts in a real repository: a dict reused between calls and arrays or tensors updated in
place after the call record each step's own value; a value that is not one number is refused at
the call with a message naming the key and the type, and the run goes on; a value the writer
cannot write, or a full disk, costs only those values and is recorded in run.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import replicator
from replicator.errors import UsageError
from replicator.store.metrics import read_metrics


def _run_script(repo: Path, code: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    (repo / "script.py").write_text(textwrap.dedent(code))
    proc = subprocess.run(
        [sys.executable, "script.py"], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    return proc, run_dir


def _series(run_dir: Path) -> dict[str, list[tuple[int, object]]]:
    series: dict[str, list[tuple[int, object]]] = {}
    for entry in read_metrics(run_dir / "metrics.jsonl"):
        series.setdefault(entry["key"], []).append((entry["step"], entry["value"]))
    return series


def test_a_reused_dict_and_arrays_updated_in_place_record_the_value_at_the_call(
    repo: Path,
) -> None:
    _, run_dir = _run_script(
        repo,
        """
        import numpy as np, replicator
        with replicator.start({"lr": 0.1}, seed=1) as run:
            d = {}
            acc = np.zeros(1)
            zero_d = np.array(0.0)
            for i in range(300):
                d["loss"] = i
                d["acc"] = acc
                d["zero_d"] = zero_d
                d["np_scalar"] = np.float32(i) / 2
                run.log(d, step=np.int64(i))
                acc += 1
                zero_d += 2
        print(run.dir)
        """,
    )
    series = _series(run_dir)
    assert series["loss"] == [(i, i) for i in range(300)]
    assert series["acc"] == [(i, float(i)) for i in range(300)]
    assert series["zero_d"] == [(i, 2.0 * i) for i in range(300)]
    assert series["np_scalar"] == [(i, i / 2) for i in range(300)]
    assert json.loads((run_dir / "summary.json").read_text())["acc"] == 299.0


def test_a_torch_tensor_updated_in_place_records_the_value_at_the_call(repo: Path) -> None:
    pytest.importorskip("torch")
    _, run_dir = _run_script(
        repo,
        """
        import torch, replicator
        with replicator.start({"lr": 0.1}, seed=1) as run:
            total = torch.zeros(())
            for i in range(100):
                run.log({"total": total, "int": torch.tensor([i])}, step=i)
                total += 0.5
        print(run.dir)
        """,
    )
    series = _series(run_dir)
    assert series["total"] == [(i, 0.5 * i) for i in range(100)]
    assert series["int"] == [(i, i) for i in range(100)]


def test_a_value_that_is_not_one_number_is_refused_at_the_call_and_the_run_goes_on(
    repo: Path,
) -> None:
    proc, run_dir = _run_script(
        repo,
        """
        import numpy as np, replicator
        from replicator.errors import UsageError

        class Broken:
            def __float__(self):
                raise RuntimeError("no value yet")

        with replicator.start({"lr": 0.1}, seed=1) as run:
            for i in range(50):
                run.log({"loss": 1.0 / (i + 1), "phase": "warmup"}, step=i)
                if i in (10, 20, 30):
                    bad = {10: np.array([1.0, 2.0, 3.0]), 20: Broken(), 30: None}[i]
                    try:
                        run.log({"loss": 0.0, "bad": bad}, step=i)
                    except UsageError as exc:
                        print("refused:", exc)
        print(run.dir)
        """,
    )
    refused = [line for line in proc.stdout.splitlines() if line.startswith("refused:")]
    assert len(refused) == 3
    assert "'bad' at step 10 is a numpy.ndarray of shape (3,), not a number" in refused[0]
    assert "'bad' at step 20 is a " in refused[1] and "no value yet" in refused[1]
    assert "'bad' at step 30 is None" in refused[2]
    assert all("float(x.mean())" in line for line in refused)
    series = _series(run_dir)
    assert series["loss"] == [(i, 1.0 / (i + 1)) for i in range(50)]  # nothing of a refused call
    assert series["phase"] == [(i, "warmup") for i in range(50)]  # strings are kept as before
    assert "bad" not in series
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "completed" and "metrics_error" not in meta


def test_refused_value_error_names_the_run_key_and_fix(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    with replicator.start({}, seed=1, store=tmp_path / "store") as run:
        with pytest.raises(UsageError, match=r"run.log in run .*'hist' at step 3 is a numpy"):
            run.log({"hist": np.ones(4)}, step=3)
        with pytest.raises(UsageError, match=r"step 'x' \(str\) is not an integer"):
            run.log({"loss": 1.0}, step="x")  # type: ignore[arg-type]
        with pytest.raises(UsageError, match=r"must be a dict of names to values.*got a float"):
            run.log(0.5)  # type: ignore[arg-type]
        run.log({"loss": 1.0}, step=4)
    assert [(e["step"], e["key"]) for e in read_metrics(run.dir / "metrics.jsonl")] == [(4, "loss")]


def test_a_value_the_writer_cannot_write_costs_only_itself_and_is_recorded(repo: Path) -> None:
    proc, run_dir = _run_script(
        repo,
        """
        import replicator
        with replicator.start({"lr": 0.1}, seed=1) as run:
            for i in range(20):
                run.log({"loss": float(i), "huge": 10 ** 5000 if i == 7 else i}, step=i)
        print(run.dir)
        """,
    )
    series = _series(run_dir)
    assert series["loss"] == [(i, float(i)) for i in range(20)]
    assert series["huge"] == [(i, i) for i in range(20) if i != 7]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "completed"
    assert "1 metric value(s) not written" in meta["metrics_error"]
    assert "'huge' at step 7" in meta["metrics_error"]
    assert "not written" in proc.stderr  # and the script's user is told


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_never_stops_the_run_and_is_recorded(repo: Path) -> None:
    proc, run_dir = _run_script(
        repo,
        """
        import os, time, replicator
        with replicator.start({"lr": 0.1}, seed=1) as run:
            os.symlink("/dev/full", run.dir / "metrics.jsonl")  # every write: ENOSPC
            for i in range(100_000):
                run.log({"loss": float(i)}, step=i)
            time.sleep(1.2)  # a background flush meets the full disk, and goes on
            run.log({"loss": -1.0}, step=100_000)
        print(run.dir)
        """,
    )
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "completed"
    assert meta["metrics_error"].startswith("100001 metric value(s) not written to ")
    assert "disk full" in meta["metrics_error"]
    assert "No space left on device" in proc.stderr
    assert json.loads((run_dir / "summary.json").read_text())["loss"] == -1.0
