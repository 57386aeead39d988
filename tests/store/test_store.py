"""The store: run ids, discovery, the SQLite index as a rebuildable cache, damaged runs."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from replicator.errors import RunNotFoundError
from replicator.store import Store, new_run_id


def make_run(
    store: Store,
    *,
    experiment: str = "e",
    status: str = "completed",
    config: dict | None = None,
    summary: dict | None = None,
    seed: int = 1,
) -> Path:
    run_id, run_dir = store.create_run_dir()
    meta = {
        "schema_version": 1,
        "id": run_id,
        "experiment": experiment,
        "status": status,
        "seed": seed,
        "started": 1.0,
        "ended": 2.0,
        "config": config or {},
    }
    (run_dir / "run.json").write_text(json.dumps(meta))
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def _create_many(root: str, n: int, queue: multiprocessing.Queue) -> None:
    store = Store(root)
    queue.put([store.create_run_dir()[0] for _ in range(n)])


def test_run_ids_are_unique_across_concurrent_starts_and_sort_by_time(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_create_many, args=(str(tmp_path / "s"), 100, queue)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    ids = queue.get(timeout=60) + queue.get(timeout=60)
    for p in procs:
        p.join(timeout=60)
    assert len(ids) == len(set(ids)) == 200
    assert new_run_id(1_000_000.5) < new_run_id(1_000_000.75) < new_run_id(1_000_001.0)


def test_store_discovery_env_and_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "p"
    (project / "sub").mkdir(parents=True)
    (project / "replicator.yaml").write_text("store: runs-here\n")
    assert Store.open(project / "sub").root == (project / "runs-here").resolve()
    monkeypatch.setenv("REPLICATOR_STORE", str(tmp_path / "elsewhere"))
    assert Store.open(project).root == (tmp_path / "elsewhere").resolve()


def test_index_is_a_cache_that_follows_the_files(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    a = make_run(store, summary={"acc": 0.5})
    make_run(store, experiment="other")
    assert [r.summary for r in store.records()] == [{"acc": 0.5}, {}]
    (a / "summary.json").write_text(json.dumps({"acc": 0.75, "loss": 1.0}))
    assert store.records()[0].summary == {"acc": 0.75, "loss": 1.0}
    with sqlite3.connect(store.index_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    store.index_path.unlink()
    assert len(store.records()) == 2  # recreated from the files
    assert store.rebuild_index() == 2


def test_damaged_run_json_is_reported_and_skipped(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    make_run(store)
    broken = make_run(store)
    (broken / "run.json").write_text('{"id": "x", "status": ')
    records = store.records()
    assert len(records) == 1
    assert len(store.problems) == 1 and "run.json is damaged" in store.problems[0]
    # the same without the index
    assert len(store.records(use_index=False)) == 1


def test_unusable_index_falls_back_to_the_files(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    make_run(store)
    store.index_path.write_bytes(b"this is not a sqlite database" * 100)
    assert len(store.records()) == 1
    assert any("index unusable" in p for p in store.problems)


def test_resolve_by_id_prefix_suffix_name_and_last(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    first = make_run(store)
    second = make_run(store)
    assert store.resolve(first.name) == first
    assert store.resolve("last") == second
    assert store.resolve("last~1") == store.resolve("last~") == first
    with pytest.raises(RunNotFoundError, match=r"has 2 run"):
        store.resolve("last~2")
    assert store.resolve(second.name[-4:]) == second
    with pytest.raises(RunNotFoundError, match=r"No run 'zzzz'.*replicator ls"):
        store.resolve("zzzz")
    with pytest.raises(RunNotFoundError, match=r"matches 2 runs"):
        store.resolve(first.name[:8])


def test_the_nearest_project_marker_wins(tmp_path: Path) -> None:
    from replicator.store import find_project_root

    (tmp_path / ".replicator").mkdir()  # a store in a parent folder
    project = tmp_path / "work" / "project"
    (project / "src").mkdir(parents=True)
    (project / ".git").mkdir()
    assert find_project_root(project / "src") == project
    assert find_project_root(tmp_path / "work") == tmp_path
