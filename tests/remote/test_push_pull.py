"""push, pull and ls --remote with a local-path remote: real runs, real git, real files."""

from __future__ import annotations

import json
from pathlib import Path

from ..conftest import git, run_cli
from .conftest import clone, copy_runs, record_run


def test_push_pull_path_remote_round_trip(repo: Path, tmp_path: Path) -> None:
    run_id = record_run(repo)
    remote = tmp_path / "remote"

    first = run_cli("push", str(remote), cwd=repo)
    assert first.returncode == 0, first.stderr
    assert "Pushed 1 run(s)" in first.stdout
    marker = json.loads((remote / "done" / f"{run_id}.json").read_text())
    # the checkpoint and the declared output are objects under the digest the run recorded
    manifest = json.loads(
        (repo / f".replicator/runs/{run_id}/checkpoints/manifest.json").read_text()
    )
    ckpt_hash = manifest["checkpoints"][0]["hash"].split(":", 1)[1]
    assert (remote / "objects" / ckpt_hash[:2] / ckpt_hash).is_file()
    output_hash = marker["outputs"]["model.txt"]
    assert (
        remote / "objects" / output_hash[:2] / output_hash
    ).read_text() == "weights of the model"
    assert not (remote / "runs" / run_id / "heartbeat").exists()
    assert not list((remote / "runs" / run_id / "checkpoints").glob("*.safetensors"))
    assert marker["snapshot"]["bundle"].startswith("snapshots/")

    again = run_cli("push", str(remote), "--json", cwd=repo)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert (result["pushed"], result["already"], result["files"]) == ([], [run_id], 0)

    listed = run_cli("ls", "--remote", str(remote), "--json", cwd=repo)
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["status"]) for r in json.loads(listed.stdout)] == [(run_id, "completed")]

    other = clone(repo, tmp_path / "teammate")
    pulled = run_cli("pull", str(remote), cwd=other)
    assert pulled.returncode == 0, pulled.stderr
    assert "Pulled 1 run(s)" in pulled.stdout
    run_dir = other / ".replicator" / "runs" / run_id
    assert (
        git(other, "rev-parse", f"refs/replicator/snapshots/{run_id}")
        == marker["snapshot"]["commit"]
    )
    assert (other / ".replicator" / "objects" / output_hash[:2] / output_hash).is_file()
    verify = run_cli("checkpoint", "verify", run_id, cwd=other)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    shown = run_cli("show", run_id, cwd=other)
    assert shown.returncode == 0, shown.stderr
    # the pulled run's recorded paths are read against where it now is
    assert f"working directory:     {other.resolve()}" in shown.stdout
    assert str(run_dir.resolve()) in shown.stdout
    assert json.loads((run_dir / "pulled.json").read_text())["remote"] == str(remote)

    twice = run_cli("pull", str(remote), cwd=other)
    assert twice.returncode == 0 and "Pulled 0 run(s)" in twice.stdout
    assert "1 already here" in twice.stdout

    # the teammate passes the pulled run on: its outputs come from the store's objects/
    onward = run_cli("push", str(tmp_path / "remote2"), cwd=other)
    assert onward.returncode == 0 and onward.stderr == "", onward.stderr
    assert (tmp_path / "remote2" / "objects" / output_hash[:2] / output_hash).is_file()
    assert not (tmp_path / "remote2" / "runs" / run_id / "pulled.json").exists()


def test_running_run_is_not_pushed_and_ls_remote_filters(repo: Path, tmp_path: Path) -> None:
    import os

    run_id = record_run(repo)
    (live,) = copy_runs(repo, run_id, 1)
    path = repo / ".replicator" / "runs" / live / "run.json"
    meta = json.loads(path.read_text())
    # recorded by this very process (alive on this host): the run is still running
    from replicator.store import process_identity

    meta.update(status="running", ended=None, **process_identity())
    path.write_text(json.dumps(meta))
    os.utime(path.parent / "heartbeat")
    remote = tmp_path / "remote"
    pushed = run_cli("push", str(remote), cwd=repo)
    assert pushed.returncode == 0, pushed.stderr
    assert f"skipped {live}: still running" in pushed.stdout
    assert not (remote / "done" / f"{live}.json").exists()
    assert not (remote / "runs" / live).exists()

    listed = run_cli("ls", "--remote", str(remote), "--status", "failed", cwd=repo)
    assert listed.returncode == 0, listed.stderr
    assert run_id not in listed.stdout
    table = run_cli("ls", "--remote", str(remote), "--where", "summary.loss < 1", cwd=repo)
    assert run_id in table.stdout and live not in table.stdout


def test_pull_of_named_runs_and_an_unknown_one(repo: Path, tmp_path: Path) -> None:
    run_id = record_run(repo)
    copies = copy_runs(repo, run_id, 2, keep=("run.json", "summary.json", "status.jsonl"))
    remote = tmp_path / "remote"
    assert run_cli("push", str(remote), cwd=repo).returncode == 0
    other = clone(repo, tmp_path / "teammate")
    got = run_cli("pull", str(remote), copies[1], cwd=other)
    assert got.returncode == 0, got.stderr
    assert sorted(p.name for p in (other / ".replicator" / "runs").iterdir()) == [copies[1]]
    missing = run_cli("pull", str(remote), "nope-123", cwd=other)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"Error: No run 'nope-123' on remote {remote}. "
        f"`replicator ls --remote {remote}` lists them."
    )


def test_bad_remotes_setting_names_file_line_and_remote(repo: Path) -> None:
    (repo / "replicator.yaml").write_text(
        "store: .replicator\nremotes:\n  team: {storage_options: 3}\n"
    )
    proc = run_cli("push", "team", cwd=repo)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"Error: Setting 'remotes' in {repo / 'replicator.yaml'}:2: remote 'team' needs "
        "'url: URL' and optionally a mapping 'storage_options:' (fsspec's options, such as "
        "endpoint_url or profile)."
    )
