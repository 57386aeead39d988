"""The JSON API of `replicator ui`, against the real server over a store of real runs."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import SECRET, UiServer, UiStore, clean_env, start_ui


def get(server: UiServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.base}{path}", params=params or None, timeout=60)


def metric_points(run_dir: Path, key: str) -> list[tuple[int, float]]:
    points = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("key") == key:
            points.append((entry["step"], entry["value"]))
    return points


def test_runs_table_has_every_run_with_its_current_status(
    ui_server: UiServer, ui_store: UiStore
) -> None:
    data = get(ui_server, "/api/runs").json()
    rows = {row["id"]: row for row in data["runs"]}
    assert data["total"] == len(rows) == 9
    expected = {
        **dict.fromkeys(ui_store.completed, "completed"),
        ui_store.one("failed"): "failed",
        ui_store.one("running"): "running",
        ui_store.one("damaged"): "damaged",
        ui_store.one("damaged_field"): "damaged",
    }
    assert {i: rows[i]["status"] for i in expected} == expected
    assert "is damaged" in rows[ui_store.one("damaged")]["damaged"]
    assert "'started' must be a number" in rows[ui_store.one("damaged_field")]["damaged"]
    assert data["config_keys"] == ["lr"]
    assert {"loss", "acc"} <= set(data["summary_keys"])
    a0, a1 = ui_store.ids["a"]
    b0, b1 = ui_store.ids["b"]
    assert rows[a0]["config"] == {"lr": 0.1} and rows[b0]["config"] == {"lr": 0.01}
    # the seeds of one config share a group; another config is another group
    assert rows[a0]["group"] == rows[a1]["group"] != rows[b0]["group"] == rows[b1]["group"]
    assert rows[a0]["seed"] != rows[a1]["seed"]
    summary = json.loads((ui_store.store / "runs" / a0 / "summary.json").read_text())
    assert rows[a0]["summary"]["loss"] == summary["loss"]
    assert rows[a0]["duration"] > 0 and rows[a0]["started"] > 1e9


def test_where_filters_like_ls_and_a_bad_one_gives_ls_message(
    ui_server: UiServer, ui_store: UiStore, cli: Any
) -> None:
    data = get(ui_server, "/api/runs", where="config.lr < 0.05").json()
    assert sorted(r["id"] for r in data["runs"]) == sorted(ui_store.ids["b"])
    assert data["where"] == "config.lr < 0.05"
    failed = get(ui_server, "/api/runs", where="status == 'failed'").json()
    assert [r["id"] for r in failed["runs"]] == ui_store.ids["failed"]

    bad = "config.lr = 0.1"
    answer = get(ui_server, "/api/runs", where=bad)
    assert answer.status_code == 400
    ls = cli("ls", "--where", bad, cwd=ui_store.project, env=clean_env())
    assert ls.returncode == 2
    assert ls.stderr.strip() == f"Error: {answer.json()['error']}"
    assert "Compare with '=='" in answer.json()["error"]


def test_run_page_data(ui_server: UiServer, ui_store: UiStore) -> None:
    b0 = ui_store.ids["b"][0]
    data = get(ui_server, f"/api/runs/{b0}").json()
    assert data["id"] == b0 and data["status"] == "completed" and data["damaged"] is None
    assert [s["status"] for s in data["status_history"]][-1] == "completed"
    assert "running" in [s["status"] for s in data["status_history"]]
    assert data["config"]["lr"] == 0.01 and data["config"]["steps"] == 30
    assert any("lr: 0.01" in text for text in data["config_raw"].values())
    code = data["code"]
    assert code["commit"] and code["dirty"] is True
    assert {"path": "train.py", "change": "M"} in code["changed_files"]
    assert "# tuned for config b" in code["patch"]
    assert data["metric_keys"] == ["loss", "acc"]
    assert data["environment"]["python"] and data["hardware"]
    files = data["checkpoints"]["files"]
    assert [f["step"] for f in files][-1] == 29
    assert files[-1]["latest"] is True
    assert data["checkpoints"]["verify_url"] == f"/api/runs/{b0}/checkpoints/verify"
    assert data["seeds"]
    # run references as on the command line, resolved from the server's listing
    assert get(ui_server, "/api/runs/last").json()["id"] == ui_store.one("running")
    assert get(ui_server, "/api/runs/last~1").json()["id"] == ui_store.ids["b"][-1]
    missing = get(ui_server, "/api/runs/20990101-000000-none")
    assert missing.status_code == 404 and "replicator ls" in missing.json()["error"]


def test_damaged_runs_are_shown_as_damaged(ui_server: UiServer, ui_store: UiStore) -> None:
    broken = get(ui_server, f"/api/runs/{ui_store.one('damaged')}")
    assert broken.status_code == 200
    assert broken.json()["status"] == "damaged" and "is damaged" in broken.json()["damaged"]
    # the other files of the run are still shown
    assert broken.json()["metric_keys"] == ["loss", "acc"]
    partial = get(ui_server, f"/api/runs/{ui_store.one('damaged_field')}").json()
    assert "'started' must be a number" in partial["damaged"]
    assert partial["status"] == "completed"  # what run.json still says
    for path in ("metrics", "output", "checkpoints/verify", "live"):
        for role in ("damaged", "damaged_field"):
            answer = get(ui_server, f"/api/runs/{ui_store.one(role)}/{path}")
            assert answer.status_code == 200, (path, role, answer.text)


def test_metrics_are_downsampled_keeping_extremes_and_csv_is_complete(
    ui_server: UiServer, ui_store: UiStore
) -> None:
    a0 = ui_store.ids["a"][0]
    run_dir = ui_store.store / "runs" / a0
    loss = metric_points(run_dir, "loss")
    data = get(ui_server, f"/api/runs/{a0}/metrics", keys="loss", points=10).json()
    series = data["series"]["loss"]
    assert list(data["series"]) == ["loss"]
    assert series["total"] == len(loss) == 30 and series["downsampled"] is True
    assert len(series["step"]) <= 10
    assert min(series["value"]) == min(v for _, v in loss)
    assert max(series["value"]) == max(v for _, v in loss)
    assert series["step"][0] == 0 and series["step"][-1] == 29
    full = get(ui_server, f"/api/runs/{a0}/metrics", points=1000).json()["series"]
    assert list(zip(full["loss"]["step"], full["loss"]["value"])) == loss
    assert full["acc"]["downsampled"] is False

    answer = get(ui_server, f"/api/runs/{a0}/metrics.csv")
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 60
    assert [(int(r["step"]), float(r["value"])) for r in rows if r["key"] == "loss"] == loss


def test_output_tail(ui_server: UiServer, ui_store: UiStore) -> None:
    a0 = ui_store.ids["a"][0]
    out = get(ui_server, f"/api/runs/{a0}/output", stream="stdout", tail=5).json()
    assert "trained 30 steps" in out["lines"]
    assert out["size"] == (ui_store.store / "runs" / a0 / "stdout.log").stat().st_size
    err = get(ui_server, f"/api/runs/{a0}/output", stream="stderr").json()
    assert "a warning line" in err["lines"]
    bad = get(ui_server, f"/api/runs/{a0}/output", stream="../run.json")
    assert bad.status_code == 400 and "stdout or stderr" in bad.json()["error"]


def test_compare_is_the_ranked_diff(ui_server: UiServer, ui_store: UiStore, cli: Any) -> None:
    a0, b0 = ui_store.ids["a"][0], ui_store.ids["b"][0]
    data = get(ui_server, "/api/compare", ids=f"{a0},{b0}").json()
    assert [r["id"] for r in data["runs"]] == [a0, b0]
    titles = [s["title"] for s in data["sections"]]
    order = ["Environment", "Seeds", "Config", "Data", "Code", "Metrics", "Outputs"]
    assert titles == [t for t in order if t in titles]
    assert {"Seeds", "Config", "Code", "Metrics"} <= set(titles)
    config = next(s for s in data["sections"] if s["title"] == "Config")
    assert {"key": "lr", "values": ["0.1", "0.01"]}.items() <= config["rows"][0].items()
    code = next(s for s in data["sections"] if s["title"] == "Code")
    changed = [f for f in code["changed_files"] if f["run"] == b0]
    assert changed[0]["path"] == "train.py" and "# tuned for config b" in changed[0]["patch"]
    assert data["metric_keys"] == ["loss", "acc"]
    # the same keys, in the same order, as `replicator diff`
    diff = cli("diff", a0, b0, "--json", cwd=ui_store.project, env=clean_env())
    keys = [d["key"] for d in json.loads(diff.stdout)["differences"]]
    shown = [row["key"] for s in data["sections"] for row in s["rows"]]
    assert shown == keys

    three = get(ui_server, "/api/compare", ids=",".join([a0, *ui_store.ids["b"]])).json()
    lr = next(s for s in three["sections"] if s["title"] == "Config")["rows"][0]
    assert lr["values"] == ["0.1", "0.01", "0.01"]
    assert get(ui_server, "/api/compare", ids=a0).status_code == 400


def test_compare_curves_group_seeds_with_the_report_band(
    ui_server: UiServer, ui_store: UiStore
) -> None:
    ids = [*ui_store.ids["a"], *ui_store.ids["b"]]
    data = get(ui_server, "/api/compare/curves", ids=",".join(ids), key="loss").json()
    assert set(data["runs"]) == set(ids)
    assert len(data["groups"]) == 2
    for group in data["groups"]:
        assert group["n"] == 2
        members = [dict(metric_points(ui_store.store / "runs" / i, "loss")) for i in group["ids"]]
        for step, mean, low, high in zip(group["step"], group["mean"], group["low"], group["high"]):
            assert mean == pytest.approx(statistics.mean(m[step] for m in members))
            assert low <= mean <= high
    labels = sorted(g["label"] for g in data["groups"])
    assert labels == ["lr=0.01", "lr=0.1"]
    assert "t-CI" in data["band"]


def test_experiment_params(ui_server: UiServer, ui_store: UiStore) -> None:
    data = get(ui_server, "/api/experiments/ui/params").json()
    assert data["config_keys"] == ["lr"]
    rows = {r["id"]: r for r in data["rows"]}
    assert rows[ui_store.ids["b"][0]]["config"] == {"lr": 0.01}
    assert "loss" in rows[ui_store.ids["b"][0]]["summary"]
    missing = get(ui_server, "/api/experiments/nope/params")
    assert missing.status_code == 404 and "ui" in missing.json()["error"]


def test_checkpoints_verify(ui_server: UiServer, ui_store: UiStore, tmp_path: Path) -> None:
    b0 = ui_store.ids["b"][0]
    data = get(ui_server, f"/api/runs/{b0}/checkpoints/verify").json()
    assert data["files"] and all(f["ok"] for f in data["files"])
    # a copy of the store with one checkpoint changed after it was saved
    copy = tmp_path / "store"
    shutil.copytree(ui_store.store, copy, symlinks=True, ignore=shutil.ignore_patterns("index*"))
    folder = copy / "runs" / b0 / "checkpoints"
    latest = sorted(p for p in folder.iterdir() if p.name != "manifest.json" and p.is_file())
    target = next(p for p in latest if p.suffix not in (".json", ".jsonl"))
    target.write_bytes(target.read_bytes()[:-3] + b"xyz")
    with start_ui(copy) as server:
        checked = get(server, f"/api/runs/{b0}/checkpoints/verify").json()
    bad = [f for f in checked["files"] if not f["ok"]]
    assert [f["name"] for f in bad] == [target.name]
    assert "hash differs" in bad[0]["problem"]


def test_exports(ui_server: UiServer, ui_store: UiStore) -> None:
    ids = [*ui_store.ids["a"], *ui_store.ids["b"]]
    index = ui_store.store / "index.sqlite"
    before = index.stat().st_mtime_ns if index.exists() else None
    report = get(ui_server, "/api/export/report", ids=",".join(ids), metric="loss")
    assert (index.stat().st_mtime_ns if index.exists() else None) == before  # nothing written
    assert report.status_code == 200, report.text
    assert report.headers["content-type"].startswith("text/html")
    assert "attachment" in report.headers["content-disposition"]
    assert "<html" in report.text and "<script" not in report.text
    assert all(i in report.text for i in ids)
    mixed = get(ui_server, "/api/export/report", ids="nope")
    assert mixed.status_code == 404

    table = get(ui_server, "/api/export/runs.csv", where="config.lr < 0.05")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert sorted(r["id"] for r in rows) == sorted(ui_store.ids["b"])
    assert rows[0]["config.lr"] == "0.01" and float(rows[0]["summary.loss"]) > 0


def test_secrets_stay_redacted_everywhere(ui_server: UiServer, ui_store: UiStore) -> None:
    run_id = ui_store.one("secret")
    detail = get(ui_server, f"/api/runs/{run_id}").json()
    assert "<redacted>" in detail["record"]["command"]
    answers = [
        get(ui_server, "/api/runs"),
        get(ui_server, f"/api/runs/{run_id}"),
        get(ui_server, f"/api/runs/{run_id}/output"),
        get(ui_server, "/api/compare", ids=f"{ui_store.ids['a'][0]},{run_id}"),
        get(ui_server, "/api/export/runs.csv"),
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert SECRET not in answer.text


def test_a_long_curve_keeps_its_spike_and_its_ends(ui_store: UiStore, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(ui_store.store, copy, ignore=shutil.ignore_patterns("index*"))
    run_id = ui_store.ids["a"][0]
    lines = []
    for step in range(20_000):
        value = 1.0 / (1 + step) + (50.0 if step == 12_345 else 0.0) - (9.0 if step == 777 else 0.0)
        lines.append(json.dumps({"step": step, "time": 1.0 + step, "key": "loss", "value": value}))
    (copy / "runs" / run_id / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with start_ui(copy) as server:
        data = get(server, f"/api/runs/{run_id}/metrics", points=100).json()["series"]["loss"]
    assert data["total"] == 20_000 and data["downsampled"] is True
    assert len(data["step"]) <= 100
    assert data["step"][0] == 0 and data["step"][-1] == 19_999
    assert data["step"] == sorted(data["step"])
    top = data["value"].index(max(data["value"]))
    low = data["value"].index(min(data["value"]))
    assert (data["step"][top], data["step"][low]) == (12_345, 777)
