"""Datasets declared in a config's `data:` section are fingerprinted with every run."""

from __future__ import annotations

import json
from pathlib import Path

from ..conftest import run_cli


def test_run_records_datasets_and_diff_names_changed_files(repo: Path) -> None:
    data = repo / "data" / "train"
    data.mkdir(parents=True)
    (data / "a.csv").write_text("x,y\n1,2\n")
    (data / "b.csv").write_text("x,y\n3,4\n")
    (repo / "c.yaml").write_text("data:\n  train: data/train\nlr: 0.1\n")
    assert (
        run_cli(
            "run", "-c", "c.yaml", "--seed", "1", "--", "python", "-c", "pass", cwd=repo
        ).returncode
        == 0
    )
    (data / "b.csv").write_text("x,y\n3,5\n")
    (data / "c.csv").write_text("x,y\n9,9\n")
    assert (
        run_cli(
            "run", "-c", "c.yaml", "--seed", "1", "--", "python", "-c", "pass", cwd=repo
        ).returncode
        == 0
    )
    runs = json.loads(run_cli("ls", "--json", cwd=repo).stdout)
    first, second = (
        json.loads((Path(r["dir"]) / "run.json").read_text())["data"]["train"] for r in runs
    )
    assert first["nfiles"] == 2 and second["nfiles"] == 3 and first["digest"] != second["digest"]
    show = run_cli("show", "last", cwd=repo)
    assert "Data" in show.stdout and "3 files" in show.stdout
    diff = run_cli("diff", runs[0]["id"], runs[1]["id"], cwd=repo)
    assert diff.returncode == 0, diff.stderr
    data_lines = diff.stdout.split("\ndata\n")[1]
    assert "train:" in data_lines and "1 added" in data_lines and "1 modified" in data_lines
    assert "train/c.csv: <absent> -> added (8 B)" in data_lines
    assert "train/b.csv:" in data_lines and "(modified)" in data_lines


def test_data_section_must_hold_paths(repo: Path) -> None:
    (repo / "c.yaml").write_text("data:\n  fraction: 0.25\n")
    proc = run_cli("run", "-c", "c.yaml", "--", "python", "-c", "pass", cwd=repo)
    assert proc.returncode == 2 and "must map dataset names to paths" in proc.stderr


def test_missing_dataset_stops_before_the_run_starts(repo: Path) -> None:
    (repo / "c.yaml").write_text("data:\n  train: nowhere/\n")
    proc = run_cli("run", "-c", "c.yaml", "--", "python", "-c", "pass", cwd=repo)
    assert proc.returncode != 0 and "Dataset 'train' (nowhere/)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (repo / ".replicator" / "runs").exists() or not any(
        (repo / ".replicator" / "runs").iterdir()
    )


def test_datasets_of_the_scripts_own_config_are_recorded(repo: Path) -> None:
    (repo / "d").mkdir()
    (repo / "d" / "x.csv").write_text("1\n")
    (repo / "c.yaml").write_text("data:\n  train: d\n")
    (repo / "t.py").write_text(
        "import replicator\nwith replicator.start(replicator.load_config('c.yaml')):\n    pass\n"
    )
    assert run_cli("run", "--", "python", "t.py", cwd=repo).returncode == 0
    (record,) = json.loads(run_cli("ls", "--json", cwd=repo).stdout)
    meta = json.loads((Path(record["dir"]) / "run.json").read_text())
    assert meta["data"]["train"]["nfiles"] == 1
    assert (
        meta["config_hash"]
        == json.loads((Path(record["dir"]) / "config" / "script.json").read_text())["config_hash"]
    )
