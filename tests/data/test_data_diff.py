"""Diffs between fingerprints, paths and runs; recorded datasets; verify against a run; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from replicator.cli.main import cli
from replicator.data import (
    diff,
    diff_fingerprints,
    diff_recorded,
    fingerprint,
    fingerprint_datasets,
    format_record,
    verify,
)
from replicator.errors import UsageError
from replicator.store import Store


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "keep.txt").write_bytes(b"k" * 100)
    (root / "edit.txt").write_bytes(b"e" * 50)
    (root / "gone.txt").write_bytes(b"g" * 30)
    (root / "sub" / "move.bin").write_bytes(b"m" * 4096)
    (root / "empty1").write_bytes(b"")
    return root


def _change(root: Path) -> None:
    (root / "edit.txt").write_bytes(b"E" * 60)
    (root / "gone.txt").unlink()
    (root / "sub" / "move.bin").rename(root / "moved.bin")
    (root / "new.txt").write_bytes(b"n" * 7)
    (root / "empty1").rename(root / "empty2")  # empty files are never paired as renames


def test_diff_kinds_counts_and_bytes(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "d")
    store = tmp_path / "store"
    a = fingerprint(tree, store=store)
    _change(tree)
    b = fingerprint(tree, store=store)
    d = diff_fingerprints(a, b)
    assert d.changed
    assert [e.relpath for e in d.added] == ["empty2", "new.txt"]
    assert [e.relpath for e in d.removed] == ["empty1", "gone.txt"]
    assert [(o.relpath, n.relpath) for o, n in d.modified] == [("edit.txt", "edit.txt")]
    assert [(o.relpath, n.relpath) for o, n in d.renamed] == [("sub/move.bin", "moved.bin")]
    assert d.counts() == {"added": 2, "removed": 2, "modified": 1, "renamed": 1, "unchanged": 1}
    assert d.bytes() == {"added": 7, "removed": 30, "modified": 60, "renamed": 4096}
    assert d.summary().startswith("2 added (7 B), 2 removed (30 B), 1 modified (60 B)")
    same = diff_fingerprints(b, b)
    assert not same.changed and same.summary() == "unchanged (5 files)"
    # Paths and manifest ids work as sides too.
    assert diff(a.manifest_id, tree, store=store).counts() == d.counts()
    with pytest.raises(UsageError, match="Cannot compare a blake3 fingerprint with a md5 one"):
        diff_fingerprints(a, fingerprint(tree, algo="md5", store=store))
    with pytest.raises(UsageError, match="neither a path, a manifest id"):
        diff("no-such-thing", tree, store=store)


def _write_run(store: Path, run_id: str, data: dict) -> None:
    run_dir = store / "runs" / run_id
    run_dir.mkdir(parents=True)
    meta = {"id": run_id, "experiment": "e", "status": "completed", "started": 1.0, "data": data}
    (run_dir / "run.json").write_text(json.dumps(meta))


def test_recorded_datasets_diff_and_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = tmp_path / ".replicator"
    monkeypatch.setenv("REPLICATOR_STORE", str(store))
    _tree(tmp_path / "data")
    (tmp_path / "labels.csv").write_text("a,b\n")
    rec_a = fingerprint_datasets(
        {"train": "data", "labels": Path("labels.csv")}, store=Store(store), base_dir=tmp_path
    )
    assert set(rec_a) == {"train", "labels"}
    train = rec_a["train"]
    assert train["path"] == "data" and train["abspath"] == str(tmp_path / "data")
    assert train["kind"] == "dir" and train["algo"] == "blake3" and train["nfiles"] == 5
    assert train["manifest"] == f"blake3/{train['digest']}"
    assert rec_a["labels"]["kind"] == "file" and rec_a["labels"]["manifest"] is None
    json.dumps(rec_a)  # JSON-ready
    line = format_record("train", train)
    assert line.startswith(f"train  blake3:{train['digest'][:12]}.dir  4.2 KiB, 5 files  data")
    _write_run(store, "20260101-000000-aaaa", rec_a)

    assert verify(against="20260101-000000-aaaa").ok
    _change(tmp_path / "data")
    (tmp_path / "labels.csv").write_text("a,b,c\n")
    rec_b = fingerprint_datasets(
        {"train": "data", "labels": "labels.csv", "extra": "data/new.txt"},
        store=store,
        base_dir=tmp_path,
    )
    _write_run(store, "20260101-000001-bbbb", rec_b)

    changes = diff_recorded(rec_a, rec_b, store=store)
    assert changes["train"].status == "changed"
    assert changes["train"].diff is not None and changes["train"].diff.counts()["renamed"] == 1
    assert (
        changes["labels"].status == "changed" and changes["labels"].diff.counts()["modified"] == 1
    )
    assert changes["extra"].status == "added"
    assert changes["train"].summary().startswith("train: 2 added")
    assert diff_recorded(rec_a, rec_a, store=store)["train"].status == "same"

    report = verify(against="20260101-000000-aaaa")
    assert not report.ok
    by_name = {c.name: c for c in report.checks}
    assert by_name["train"].status == "differ" and by_name["train"].diff.counts()["added"] == 2

    runner = CliRunner()
    res = runner.invoke(
        cli, ["data", "diff", "20260101-000000-aaaa", "20260101-000001-bbbb", "--name", "train"]
    )
    assert res.exit_code == 1, res.output
    assert "R sub/move.bin -> moved.bin" in res.output and "+ new.txt" in res.output
    res = runner.invoke(cli, ["data", "diff", "20260101-000000-aaaa", "20260101-000001-bbbb"])
    # CliRunner bypasses main(), which turns a UsageError into exit code 2.
    assert isinstance(res.exception, UsageError) and "choose one with --name" in str(res.exception)
    res = runner.invoke(cli, ["data", "verify", "--against", "20260101-000001-bbbb", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["ok"] is True
    res = runner.invoke(cli, ["data", "verify", "--against", "20260101-000000-aaaa"])
    assert res.exit_code == 1 and "differ   train" in res.output and "- gone.txt" in res.output
    # A path against a run with one dataset uses that run's algorithm.
    _write_run(store, "20260101-000002-cccc", {"train": rec_a["train"]})
    res = runner.invoke(cli, ["data", "diff", "20260101-000002-cccc", "data", "--json"])
    assert res.exit_code == 1
    assert json.loads(res.output)["counts"]["modified"] == 1


def test_cli_fingerprint_and_verify_dvc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPLICATOR_STORE", str(tmp_path / "store"))
    _tree(tmp_path / "d")
    os.mkfifo(tmp_path / "d" / "fifo")
    runner = CliRunner()
    res = runner.invoke(cli, ["data", "fingerprint", "d", "--algo", "md5", "--json", "--entries"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["algo"] == "md5" and out["nfiles"] == 5 and len(out["entries"]) == 5
    assert out["skipped"] == [{"relpath": "fifo", "reason": "special file (FIFO), not hashed"}]
    res = runner.invoke(cli, ["data", "fingerprint", "d"])
    assert res.exit_code == 0 and res.stdout.startswith("blake3:") and "in 5 file(s)" in res.stdout
    assert "skipped fifo: special file" in res.stderr

    (tmp_path / "d.dvc").write_text(
        f"outs:\n- md5: {out['digest']}\n  size: {out['size']}\n"
        "  nfiles: 5\n  hash: md5\n  path: d\n"
    )
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  prep:\n    cmd: python prep.py\n    deps:\n"
        f"    - path: d/keep.txt\n      hash: md5\n      md5: {'0' * 32}\n      size: 100\n"
        "    params:\n      params.yaml:\n        lr: 0.1\n"
    )
    res = runner.invoke(cli, ["data", "verify", "--against", "d.dvc"])
    assert res.exit_code == 0 and "1 of 1 entries match" in res.output
    res = runner.invoke(cli, ["data", "verify", "--against", "dvc.lock"])
    assert res.exit_code == 1 and "differ   dvc.lock: stages.prep.deps[0]" in res.output
    res = runner.invoke(cli, ["data", "verify", "d/sub", "--against", "dvc.lock"])
    assert isinstance(res.exception, UsageError)
    assert "no hashed entries at or under d/sub" in str(res.exception)
    res = runner.invoke(cli, ["data", "verify", "--against", "missing.dvc"])
    assert isinstance(res.exception, UsageError) and "no such file" in str(res.exception)
    res = runner.invoke(cli, ["data", "--help"])
    assert res.exit_code == 0 and "replicator data verify --against dvc.lock" in res.output


def test_progress_helper_is_silent_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from replicator._util.progress import NullProgress, progress_bar

    with progress_bar("x") as bar:
        assert isinstance(bar, NullProgress)
        bar.set_total(10)
        bar.advance(5)
    with progress_bar("Hashing", enabled=True, delay_s=0.0, total=100) as bar:
        bar.advance(50)
        bar.advance(50)
    with progress_bar("Files", unit="files", enabled=True, delay_s=0.0) as bar:
        bar.advance(3)
    assert capsys.readouterr().out == ""


def test_exit_codes_through_the_real_entry_point(tmp_path: Path) -> None:
    env = {**os.environ, "REPLICATOR_STORE": str(tmp_path / "store")}
    proc = subprocess.run(
        [sys.executable, "-m", "replicator", "data", "fingerprint", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2 and "no such file or directory" in proc.stderr
    _tree(tmp_path / "d")
    proc = subprocess.run(
        [sys.executable, "-m", "replicator", "data", "diff", "d", "d"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("unchanged (5 files)")


def test_recorded_edge_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("REPLICATOR_STORE", str(store))
    _tree(tmp_path / "d")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x").write_text("x")
    blake = fingerprint_datasets({"d": "d", "e": "e"}, store=store, base_dir=tmp_path)
    md5 = fingerprint_datasets({"d": {"path": "d", "algo": "md5"}}, store=store, base_dir=tmp_path)
    assert md5["d"]["algo"] == "md5"
    changes = diff_recorded(blake, md5, store=store)
    assert changes["d"].status == "unknown" and "different algorithms" in changes["d"].note
    assert changes["e"].status == "removed" and changes["e"].summary() == "e: only in run a"
    # A manifest deleted from the store degrades to a digest comparison with a note.
    _change(tmp_path / "d")
    later = fingerprint_datasets({"d": "d"}, store=store, base_dir=tmp_path)
    from replicator.data.manifest import manifest_path

    manifest_path(store, later["d"]["manifest"]).unlink()
    change = diff_recorded(blake, later, store=store)["d"]
    assert change.status == "changed" and change.diff is None and "is missing" in change.note
    with pytest.raises(UsageError, match="needs a 'path'"):
        fingerprint_datasets({"bad": {"algo": "md5"}}, store=store, base_dir=tmp_path)
    with pytest.raises(UsageError, match=r"Dataset 'gone' \(nope\): .*no such file"):
        fingerprint_datasets({"gone": "nope"}, store=store, base_dir=tmp_path)
    # verify against a run with several datasets: --name picks one, a path checks it there.
    _write_run(store, "20260101-000003-dddd", blake)
    report = verify(against="20260101-000003-dddd", name="e")
    assert [c.name for c in report.checks] == ["e"] and report.ok
    report = verify(tmp_path / "e", against="20260101-000003-dddd")
    assert [c.name for c in report.checks] == ["e"] and report.ok
    with pytest.raises(UsageError, match=r"neither a dvc\.lock/\.dvc file nor a run"):
        verify(against="no-such-run")
    (tmp_path / "dvc.yaml").write_text("stages:\n  a:\n    cmd: echo\n    deps: [d]\n")
    with pytest.raises(UsageError, match="has no hashed entries"):
        verify(against=tmp_path / "dvc.yaml")
    with pytest.raises(UsageError, match="has no dataset 'zzz'"):
        verify(against="20260101-000003-dddd", name="zzz")
