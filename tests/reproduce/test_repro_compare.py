"""Comparing a reproduction with its original; checking out snapshots; the CI workflow."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from repro_helpers import git

from replicator.capture.git import capture_code
from replicator.errors import UsageError
from replicator.reproduce import (
    ReproduceError,
    checkout_code,
    compare_histories,
    compare_outputs,
    compare_summaries,
    compare_values,
    verdict_of,
    write_ci_workflow,
)
from replicator.reproduce.compare import Check


def test_values_exact_within_tolerance_or_mismatch() -> None:
    assert compare_values(1.0, 1.0, rtol=0, atol=0) == "exact"
    assert compare_values("NaN", math.nan, rtol=0, atol=0) == "exact"
    assert compare_values(1.0, 1.0 + 1e-9, rtol=1e-6, atol=0) == "within tolerance"
    assert compare_values(1.0, 1.1, rtol=1e-6, atol=0) == "mismatch"
    assert compare_values(1.0, 1.05, rtol=0, atol=0.1) == "within tolerance"
    assert compare_values("a", "b", rtol=1, atol=1) == "mismatch"


def test_summaries_select_metrics_and_report_missing() -> None:
    checks = compare_summaries(
        {"acc": 0.9, "loss": 0.1, "val_acc": 0.8}, {"acc": 0.9, "loss": 0.2}, metrics=["*acc"]
    )
    assert [(c.name, c.status) for c in checks] == [("acc", "exact"), ("val_acc", "missing")]


def _hist(values: list[float]) -> list[dict]:
    return [{"key": "loss", "step": i, "value": v} for i, v in enumerate(values)]


def test_history_names_the_first_diverging_step() -> None:
    (same,) = compare_histories(_hist([1, 2, 3]), _hist([1, 2, 3]))
    assert same.status == "exact"
    (close,) = compare_histories(_hist([1, 2, 3]), _hist([1, 2 + 1e-12, 3]), rtol=1e-9)
    assert close.status == "within tolerance" and "first inexact at step 1" in close.detail
    (diverged,) = compare_histories(_hist([1, 2, 3, 4]), _hist([1, 2, 3.5, 4]), rtol=1e-9)
    assert diverged.status == "mismatch" and diverged.detail == "diverges at step 2: 3 vs 3.5"
    (short,) = compare_histories(_hist([1, 2, 3]), _hist([1]))
    assert "stops before step 1" in short.detail
    (missing,) = compare_histories(_hist([1]), [])
    assert missing.status == "missing"


def test_outputs_by_hash_and_wall_clock_files_not_comparable() -> None:
    a = {
        "files": [
            {"path": "model.bin", "blake3": "aa" * 32, "size": 3},
            {"path": "pred.csv", "blake3": "bb" * 32, "size": 3},
            {"path": "logs/events.out.tfevents.1764.host", "blake3": "cc" * 32},
            {"path": "gone.txt", "blake3": "dd" * 32},
        ]
    }
    b = {
        "files": [
            {"path": "model.bin", "blake3": "aa" * 32, "size": 3},
            {"path": "pred.csv", "blake3": "ee" * 32, "size": 4},
            {"path": "logs/events.out.tfevents.1999.host", "blake3": "ff" * 32},
        ]
    }
    status = {c.name: c.status for c in compare_outputs(a, b)}
    assert status == {
        "gone.txt": "missing",
        "logs/events.out.tfevents.1764.host": "not comparable",
        "model.bin": "exact",
        "pred.csv": "mismatch",
    }


def test_verdicts() -> None:
    exact = Check("summary", "a", "exact")
    close = Check("summary", "b", "within tolerance")
    bad = Check("summary", "c", "mismatch")
    events = Check("output", "events.out.tfevents.1", "not comparable")
    assert verdict_of([exact]) == "reproduced"
    assert verdict_of([exact, close]) == "reproduced within tolerance"
    assert verdict_of([exact, bad]) == "not reproduced"
    assert verdict_of([]) == "nothing comparable"
    assert verdict_of([events]) == "nothing comparable"
    assert verdict_of([exact], run_status="failed") == "failed"
    same = Check("output", "model.ckpt", "equivalent")
    log = Check("output", "train.log", "mismatch", role="log")
    unread = Check("checkpoint", "manifest.json", "cannot compare")
    assert verdict_of([exact, same, log]) == "reproduced"
    assert verdict_of([log]) == "nothing comparable"
    assert verdict_of([exact, unread]) == "cannot compare"
    assert verdict_of([bad, unread]) == "not reproduced"


@pytest.fixture
def dirty_repo(tmp_path: Path) -> tuple[Path, dict, Path]:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "a.py").write_text("A = 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    (root / "a.py").write_text("A = 2\n")
    (root / "new.py").write_text("NEW = True\n")
    patch = tmp_path / "code.patch"
    code = capture_code(root, run_id="r1", patch_path=patch).as_dict()
    return root, code, patch


def test_checkout_of_snapshot_holds_uncommitted_and_untracked_files(
    dirty_repo, tmp_path: Path
) -> None:
    root, code, patch = dirty_repo
    (root / "new.py").unlink()
    checkout = checkout_code(code, tmp_path / "co", patch=patch)
    assert checkout.method == "snapshot" and checkout.matches_record
    assert (checkout.root / "a.py").read_text() == "A = 2\n"
    assert (checkout.root / "new.py").is_file()
    assert checkout.path_for(root / "a.py") == checkout.root / "a.py"
    checkout.remove()
    assert not checkout.root.exists()
    assert len(git(root, "worktree", "list").splitlines()) == 1


def test_checkout_falls_back_to_commit_plus_patch(dirty_repo, tmp_path: Path) -> None:
    _root, code, patch = dirty_repo
    lost = {**code, "snapshot": "0" * 40}
    checkout = checkout_code(lost, tmp_path / "co", patch=patch)
    assert checkout.method == "commit+patch"
    assert (checkout.root / "new.py").read_text() == "NEW = True\n"
    assert checkout.matches_record  # same tree as the recorded snapshot
    checkout.remove()


def test_checkout_patch_conflict_names_the_stage(dirty_repo, tmp_path: Path) -> None:
    root, code, patch = dirty_repo
    patch.write_text(patch.read_text().replace("-A = 1", "-A = 7"))
    with pytest.raises(ReproduceError, match=r"stage 'checkout': patch conflict"):
        checkout_code({**code, "snapshot": "0" * 40}, tmp_path / "co", patch=patch)
    assert len(git(root, "worktree", "list").splitlines()) == 1


def test_checkout_without_repository_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(
        ReproduceError, match=r"recorded no git repository.*inside a git repository"
    ):
        checkout_code(
            {"repo": None, "note": "not inside a git repository"},
            tmp_path / "x",
            patch=tmp_path / "p",
        )
    with pytest.raises(ReproduceError, match="no remote was recorded"):
        checkout_code(
            {"repo": str(tmp_path), "snapshot": "1" * 40, "commit": "2" * 40},
            tmp_path / "x",
            patch=tmp_path / "p",
        )


def test_ci_init_writes_a_valid_workflow(tmp_path: Path, cli) -> None:
    path = write_ci_workflow("20261126-1", root=tmp_path, rtol=1e-6)
    doc = yaml.safe_load(path.read_text())
    steps = doc["jobs"]["reproduce"]["steps"]
    assert any(
        "replicator reproduce 20261126-1 --env fresh --rtol 1e-06" in s.get("run", "")
        for s in steps
    )
    install = next(s["run"] for s in steps if s.get("name") == "Install")
    # replicator is not on PyPI under its name: the line says where this one came from
    assert "replicator @ git+" in install or "point this at a source CI can reach" in install
    with pytest.raises(UsageError, match="exists; pass --force"):
        write_ci_workflow("20261126-1", root=tmp_path)
    assert write_ci_workflow("x", root=tmp_path, force=True) == path


def test_cli_ci_init_and_reproduce_errors(repo: Path, tmp_path: Path, cli) -> None:
    store = tmp_path / "store"
    run = store / "runs" / "20261126-000000-0001"
    run.mkdir(parents=True)
    (run / "run.json").write_text(
        '{"id": "20261126-000000-0001", "status": "completed", "seed": 1}'
    )
    env = {"REPLICATOR_STORE": str(store)}
    out = cli("ci", "init", "0001", cwd=repo, env=env)
    assert out.returncode == 0, out.stderr
    assert (repo / ".github/workflows/replicator-reproduce.yml").is_file()
    again = cli("ci", "init", "0001", cwd=repo, env=env)
    assert again.returncode == 2 and "--force" in again.stderr
    failed = cli("reproduce", "0001", cwd=repo, env=env)
    assert failed.returncode == 1
    assert "reproduce failed at stage 'checkout'" in failed.stderr
    usage = cli("reproduce", "0001", "--env", "docker", cwd=repo, env=env)
    assert usage.returncode == 2


def test_checkpoints_compared_by_hash_manifests_skipped(tmp_path: Path) -> None:
    from replicator.reproduce.compare import compare_checkpoints

    for name, payload in (("a", b"weights"), ("b", b"weights")):
        folder = tmp_path / name / "checkpoints"
        folder.mkdir(parents=True)
        (folder / "step000000001-000001.safetensors").write_bytes(payload)
        (folder / "manifest.json").write_text(f'{{"time": "{name}"}}')
        (folder / "events.jsonl").write_text(name)
    (tmp_path / "a" / "checkpoints" / "step000000002-000002.safetensors").write_bytes(b"x")
    checks = {c.name: c.status for c in compare_checkpoints(tmp_path / "a", tmp_path / "b")}
    assert checks == {
        "step000000001-000001.safetensors": "exact",
        "step000000002-000002.safetensors": "missing",
    }
    assert compare_checkpoints(tmp_path / "nothing", tmp_path / "b") == []
