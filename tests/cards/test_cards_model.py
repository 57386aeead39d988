"""Model cards, datasheets and the checklist, from run directories written by hand."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from replicator.cards import checklist, datasheet, model_card
from replicator.cli.main import cli
from replicator.errors import RunNotFoundError, UsageError
from replicator.store import Store

ACCS = [0.91, 0.93, 0.92]


def _write_run(
    store_root: Path,
    run_id: str,
    *,
    experiment: str,
    seed: int,
    lr: float,
    summary: dict,
    status: str = "completed",
) -> None:
    run_dir = store_root / "runs" / run_id
    run_dir.mkdir(parents=True)
    meta = {
        "schema_version": 1,
        "id": run_id,
        "experiment": experiment,
        "name": None,
        "status": status,
        "started": 1_700_000_000.0,
        "ended": 1_700_000_600.0,
        "duration_s": 600.0,
        "exit_code": 0,
        "seed": seed,
        "command": ["python", "train.py"],
        "config": {
            "task": "image-classification",
            "model": {"width": 64},
            "optim": {"lr": lr},
            "seed": seed,
        },
        "code": {
            "commit": "0123456789abcdef0123456789abcdef01234567",
            "dirty": False,
            "remote": None,
        },
        "data": {
            "cifar10": {
                "path": "data/cifar10",
                "kind": "dir",
                "algo": "blake3",
                "digest": "ab" * 32 + ".dir",
                "size": 170_000_000,
                "nfiles": 60_000,
            }
        },
    }
    (run_dir / "run.json").write_text(json.dumps(meta))
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "environment.json").write_text(
        json.dumps(
            {
                "python": {"version": "3.11.7 (main)", "implementation": "cpython"},
                "os": {"system": "Linux", "release": "6.1", "distribution": "Debian GNU/Linux 12"},
                "torch": {"version": "2.5.0+cu124", "cuda": "12.4"},
                "packages": {"numpy": {"name": "numpy", "version": "1.26.4"}},
            }
        )
    )
    (run_dir / "hardware.json").write_text(
        json.dumps(
            {
                "cpu": {"model": "AMD EPYC 7763", "logical_cores": 32},
                "memory": {"total_bytes": 256 * 2**30},
                "gpu": {
                    "count": 2,
                    "devices": [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54"}] * 2,
                },
            }
        )
    )


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    root = tmp_path / "project" / ".replicator"
    (tmp_path / "project").mkdir()
    for i, acc in enumerate(ACCS):
        _write_run(
            root,
            f"20261126-1000{i:02d}-000{i}",
            experiment="mlp",
            seed=100 + i,
            lr=0.01,
            summary={
                "test_acc": acc,
                "loss": 0.1 * (i + 1),
                "note": "text is skipped",
                "val": {"acc": acc},
            },
        )
    _write_run(
        root, "20261126-110000-0009", experiment="mlp", seed=9, lr=0.01, summary={}, status="failed"
    )
    _write_run(
        root, "20261126-120000-0010", experiment="other", seed=1, lr=0.5, summary={"test_acc": 0.5}
    )
    (tmp_path / "project" / "README.md").write_text(
        "# mlp\n\n```bash\npip install -r requirements.txt\n```\n"
    )
    monkeypatch.setenv("REPLICATOR_STORE", str(root))
    monkeypatch.chdir(tmp_path / "project")
    return Store(root, project_root=tmp_path / "project")


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    head = text.split("---\n", 2)[1]
    return yaml.safe_load(head)


def test_model_card_metadata_is_a_valid_model_index(store: Store) -> None:
    card = model_card("mlp", store=store, dataset="cifar10", license="mit")
    meta = _front_matter(card.text)
    assert meta == card.metadata
    assert meta["license"] == "mit"
    (entry,) = meta["model-index"]
    assert entry["name"] == "mlp"
    (result,) = entry["results"]
    assert result["task"]["type"] == "image-classification"
    assert result["dataset"] == {"type": "cifar10", "name": "cifar10"}
    metrics = {m["type"]: m for m in result["metrics"]}
    assert set(metrics) == {"test_acc", "loss", "val.acc"}
    acc = metrics["test_acc"]
    assert acc["value"] == pytest.approx(statistics.fmean(ACCS))
    assert "n=3" in acc["name"] and f"SD {statistics.stdev(ACCS):.4g}" in acc["name"]
    assert all(isinstance(m["value"], float) for m in result["metrics"])
    assert len(card.runs) == 3  # the failed run and the other experiment are left out


def test_model_index_parses_with_huggingface_hub(store: Store) -> None:
    hub = pytest.importorskip("huggingface_hub")
    from huggingface_hub.repocard_data import model_index_to_eval_results

    card = model_card("mlp", store=store)
    name, results = model_index_to_eval_results(card.metadata["model-index"])
    assert name == "mlp"
    assert {r.metric_type for r in results} == {"test_acc", "loss", "val.acc"}
    parsed = hub.ModelCard(card.text)
    assert parsed.data.to_dict()["model-index"] == card.metadata["model-index"]
    assert (
        parsed.data.eval_results and parsed.data.eval_results[0].task_type == "image-classification"
    )


def test_model_card_body_filled_from_records(store: Store) -> None:
    text = model_card("mlp", store=store).text
    for expected in (
        "# Model Card for mlp",
        "## Training Details",
        "2 x NVIDIA H100 80GB HBM3",
        "AMD EPYC 7763, 32 logical cores",
        "torch 2.5.0+cu124, CUDA 12.4",
        "numpy 1.26.4",
        "fingerprint `blake3:abab",
        "60000 file(s)",
        "**Seeds:** 100, 101, 102 (n=3)",
        "| test_acc | 0.92 | 0.01 | 3 | 0.91 | 0.93 |",
        "Hours used:** 0.50",
        "replicator reproduce 20261126-100000-0000",
        "lr: 0.01",
    ):
        assert expected in text, expected
    assert "[To be written by the author]" in text
    single = model_card("20261126-100001-0001", store=store)
    assert single.runs == ("20261126-100001-0001",)
    names = [m["name"] for m in single.metadata["model-index"][0]["results"][0]["metrics"]]
    assert "test_acc (one run, n=1)" in names


def test_model_card_errors(store: Store) -> None:
    with pytest.raises(
        RunNotFoundError, match=r"No run or experiment 'nope'.*experiments: mlp, other"
    ):
        model_card("nope", store=store)
    _write_run(
        store.root,
        "20261126-130000-0011",
        experiment="broken",
        seed=1,
        lr=1.0,
        summary={},
        status="failed",
    )
    with pytest.raises(UsageError, match="none completed"):
        model_card("broken", store=store)


def test_checklist_answers_from_records(store: Store) -> None:
    result = checklist("mlp", store=store)
    assert len(result.items) == 21
    answered = {i.number for i in result.items if i.answered}
    assert {6, 11, 16, 17, 18, 19, 20, 21} <= answered
    assert not {1, 2, 3, 4, 5, 7, 8, 9, 10} & answered
    by = {i.number: i for i in result.items}
    assert "optim.lr=0.01" in by[16].answer
    assert "3 completed run(s) with seeds 100, 101, 102" in by[17].answer
    assert "test_acc: 0.92 ± 0.01 (mean ± SD, n=3)" in by[19].answer
    assert "10.0 min" in by[20].answer
    assert "H100" in by[21].answer and "Python 3.11.7" in by[21].answer
    assert "Training code" not in by[12].answer and not by[12].answered
    md = result.markdown()
    assert md.count("- [x]") == result.answered and md.count("- [ ]") == 21 - result.answered
    assert "## Experimental results" in md


def test_datasheet_prefilled(tmp_path: Path, store: Store) -> None:
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "test").mkdir()
    for i in range(3):
        (data / "train" / f"{i}.png").write_bytes(b"\x89PNG" + bytes(100))
    (data / "test" / "labels.csv").write_text("id,label\n1,cat\n")
    (data / "README").write_text("raw\n")
    sheet = datasheet(data, store=store)
    assert sheet.facts["nfiles"] == 5
    assert sheet.facts["size"] == 3 * 104 + len("id,label\n1,cat\n") + 4
    assert sheet.facts["formats"][".png"] == {"files": 3, "bytes": 312}
    assert sheet.facts["fingerprint"].startswith("blake3:")
    for section in (
        "Motivation",
        "Composition",
        "Collection Process",
        "Preprocessing/cleaning/labeling",
        "Uses",
        "Distribution",
        "Maintenance",
    ):
        assert f"## {section}" in sheet.text
    assert "| .png | 3 |" in sheet.text and "(no extension)" in sheet.text
    assert "**Top-level folders:** test, train" in sheet.text
    with pytest.raises(UsageError, match="does not exist"):
        datasheet(tmp_path / "missing")


def test_cards_cli(tmp_path: Path, store: Store) -> None:
    runner = CliRunner()
    out = tmp_path / "MODEL_CARD.md"
    res = runner.invoke(
        cli, ["card", "model", "mlp", "-o", str(out), "--task", "image-classification"]
    )
    assert res.exit_code == 0, res.output
    assert _front_matter(out.read_text())["model-index"][0]["name"] == "mlp"
    res = runner.invoke(cli, ["card", "model", "mlp", "--json"])
    assert json.loads(res.output)["metadata"]["model-index"][0]["results"]
    res = runner.invoke(cli, ["checklist", "mlp"])
    assert res.exit_code == 0 and "ML Reproducibility Checklist" in res.output
    res = runner.invoke(cli, ["checklist", "mlp", "--json"])
    assert len(json.loads(res.output)["items"]) == 21
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("x")
    res = runner.invoke(cli, ["card", "dataset", str(tmp_path / "d"), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["nfiles"] == 1
    res = runner.invoke(cli, ["card", "dataset", str(tmp_path / "nope")])
    assert res.exit_code == 2
