"""The runs table the server keeps (issue 16, speed): taken from the store's index where the
files did not change since `replicator ls` indexed them, answers reused until a run changes,
and nothing written to the store, the index included."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import httpx

from .conftest import UiStore, clean_env, start_ui


def replace_summary(run_dir: Path, **values: float) -> None:
    """Rewrite summary.json as the recorder does: a new file renamed into place."""
    path = run_dir / "summary.json"
    summary = {**json.loads(path.read_text()), **values}
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary))
    os.replace(tmp, path)


def listing(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def rows(base: str, **params: str) -> dict[str, dict[str, object]]:
    answer = httpx.get(f"{base}/api/runs", params=params or None, timeout=60)
    assert answer.status_code == 200, answer.text
    return {row["id"]: row for row in answer.json()["runs"]}


def test_an_indexed_store_changed_since_shows_the_files_and_stays_untouched(
    ui_store: UiStore, tmp_path: Path, cli: object
) -> None:
    store = tmp_path / ".replicator"
    # without the running run, whose duration moves: the answers can be reused
    running = ui_store.one("running")
    shutil.copytree(ui_store.store, store, ignore=shutil.ignore_patterns("index*", running))
    listed = cli("ls", cwd=tmp_path, env=clean_env())  # type: ignore[operator]
    assert listed.returncode == 0, listed.stderr
    assert (store / "index.sqlite").is_file()
    a0, a1 = ui_store.ids["a"]
    replace_summary(store / "runs" / a0, loss=123.5)  # after ls indexed it: the index is stale
    before = listing(store)

    with start_ui(store) as server:
        table = rows(server.base)
        assert table[a0]["summary"]["loss"] == 123.5
        for run_id in ui_store.completed:
            summary = json.loads((store / "runs" / run_id / "summary.json").read_text())
            assert table[run_id]["summary"]["loss"] == summary["loss"]
        assert list(rows(server.base, where="summary.loss > 100")) == [a0]
        # the same answer again; then a run changes and the next answer has the change
        assert rows(server.base) == table
        replace_summary(store / "runs" / a1, loss=77.0)
        assert rows(server.base)[a1]["summary"]["loss"] == 77.0
        assert list(rows(server.base, where="summary.loss > 50")) == [a0, a1]
        after = listing(store)

    expected = {**before, **{k: v for k, v in after.items() if k.endswith(f"{a1}/summary.json")}}
    assert after == expected, "the server wrote to the store"
