"""``replicator notebook run``: papermill execution recorded as a run (real kernel, real git repo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from replicator.errors import UsageError
from replicator.report.notebook import parse_parameters
from replicator.store.frames import load_runs

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("papermill")
pytest.importorskip("ipykernel")


def write_notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('lr = 0.1\nmodel = "linear"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


BODY = """
import replicator
run = replicator.start({"lr": lr, "model": model})
run.log({"loss": 1.0 / (1 + lr)}, step=0)
run.summary["score"] = lr * 10
run.finish()
import os
print("seed", seed, "hashseed", os.environ.get("PYTHONHASHSEED"))
"""


def replicator_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replicator", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_notebook_run_is_recorded_like_a_run(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = repo / ".replicator"
    monkeypatch.setenv("REPLICATOR_STORE", str(store))
    nb = write_notebook(repo / "analysis.ipynb", BODY)
    proc = replicator_cli(
        "notebook",
        "run",
        "analysis.ipynb",
        "-p",
        "lr=0.5",
        "-p",
        "model=mlp",
        "--seed",
        "7",
        "-o",
        "executed.ipynb",
        "--json",
        cwd=repo,
    )
    assert proc.returncode == 0, proc.stderr
    assert "PYTHONHASHSEED was not set" not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "completed" and result["parameters"] == {
        "lr": 0.5,
        "model": "mlp",
        "seed": 7,
    }
    runs = load_runs(store=store)
    row = runs.iloc[0]
    assert row["experiment"] == "analysis" and row["seed"] == 7
    assert row["config.lr"] == 0.5 and row["config.model"] == "mlp"
    assert row["summary.score"] == 5.0  # logged from inside the notebook, which joined the run
    run_dir = Path(row["dir"])
    executed = nbformat.read(run_dir / "notebook.ipynb", as_version=4)
    assert "seed 7 hashseed 7" in "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    assert (repo / "executed.ipynb").is_file()
    meta = json.loads((run_dir / "notebook.json").read_text())
    assert meta["source"] == str(nb.resolve()) and len(meta["source_blake3"]) == 64
    assert (run_dir / "metrics.jsonl").read_text().count('"loss"') == 1
    # recorded like any run: environment, hardware and the code snapshot
    for name in ("environment.json", "hardware.json", "code.json"):
        assert (run_dir / name).is_file(), name


@pytest.mark.slow
def test_failing_notebook_marks_the_run_failed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = repo / ".replicator"
    monkeypatch.setenv("REPLICATOR_STORE", str(store))
    write_notebook(repo / "bad.ipynb", "raise ValueError('boom')")
    proc = replicator_cli("notebook", "run", "bad.ipynb", cwd=repo)
    assert proc.returncode == 1
    assert (
        "failed in cell" in proc.stderr
        and "ValueError: boom" in proc.stderr
        and "marked failed" in proc.stderr
    )
    runs = load_runs(store=store, status=None)
    assert list(runs["status"]) == ["failed"]


def test_parameters_and_usage_errors(tmp_path: Path) -> None:
    assert parse_parameters(["lr=0.01", "n=3", "flag=true", "name=mlp", "xs=[1, 2]"]) == {
        "lr": 0.01,
        "n": 3,
        "flag": True,
        "name": "mlp",
        "xs": [1, 2],
    }
    with pytest.raises(UsageError, match="must be KEY=VALUE with KEY a Python name"):
        parse_parameters(["lr"])
    proc = replicator_cli("notebook", "run", "missing.ipynb", cwd=tmp_path)
    assert proc.returncode == 2 and "Notebook missing.ipynb does not exist." in proc.stderr
