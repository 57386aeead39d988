"""push and pull through S3: a real S3-compatible server (moto's) on 127.0.0.1, real
`replicator` processes, a push killed with SIGKILL and finished by the next one."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from ..conftest import run_cli, start_cli
from .conftest import clone, copy_runs, record_run, s3_keys

SECRET = "s3cr3t-Value-Not-To-Leak"


def write_remote(project: Path, endpoint: str, bucket: str, *, secret: str = "testing") -> None:
    """replicator.yaml's remotes: section naming the server, credentials as storage options."""
    (project / "replicator.yaml").write_text(
        "remotes:\n"
        "  team:\n"
        f"    url: s3://{bucket}/replicator\n"
        "    storage_options:\n"
        f"      endpoint_url: {endpoint}\n"
        "      key: testing-key\n"
        f"      secret: {secret}\n"
    )


def test_push_killed_mid_way_is_finished_by_the_next_push(
    repo: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    run_id = record_run(repo)
    copies = copy_runs(repo, run_id, 40, keep=("run.json", "summary.json", "status.jsonl"))
    everything = {run_id, *copies}
    write_remote(repo, s3_endpoint, s3_bucket)

    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    proc = start_cli("push", "team", cwd=repo)
    deadline = time.monotonic() + 60
    while not client.list_objects_v2(Bucket=s3_bucket, Prefix="replicator/runs/", MaxKeys=1).get(
        "KeyCount"
    ):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the push uploaded nothing"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    # what the remote shows is consistent: a run is listed only with all of its files
    keys = set(s3_keys(s3_endpoint, s3_bucket, "replicator/"))
    done = {k.split("/")[-1][: -len(".json")] for k in keys if k.startswith("replicator/done/")}
    assert done < everything
    listed = run_cli("ls", "--remote", "team", "--json", cwd=repo)
    assert listed.returncode == 0, listed.stderr
    assert {r["id"] for r in json.loads(listed.stdout)} == done
    for marked in done:
        marker = json.loads((repo / ".replicator/runs" / marked / "run.json").read_text())
        assert marker["id"] == marked

    resumed = run_cli("push", "team", "--json", cwd=repo)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert set(result["pushed"]) == everything - done
    keys = set(s3_keys(s3_endpoint, s3_bucket, "replicator/"))
    for one in everything:
        assert f"replicator/done/{one}.json" in keys
        assert f"replicator/runs/{one}/run.json" in keys
    again = run_cli("push", "team", "--json", cwd=repo)
    assert json.loads(again.stdout)["pushed"] == []
    assert len(json.loads(again.stdout)["already"]) == len(everything)


def test_pulled_run_shows_and_reproduces(
    repo: Path, tmp_path: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    run_id = record_run(repo)
    write_remote(repo, s3_endpoint, s3_bucket, secret=SECRET)
    pushed = run_cli("push", "team", cwd=repo)
    assert pushed.returncode == 0, pushed.stderr
    assert SECRET not in pushed.stdout + pushed.stderr

    other = clone(repo, tmp_path / "teammate")
    # a fresh store in a clone, the remote given by URL, credentials from the environment
    url = f"s3://{s3_bucket}/replicator"
    (other / "replicator.yaml").write_text(
        f"remotes:\n  team:\n    url: {url}\n    storage_options:\n"
        f"      endpoint_url: {s3_endpoint}\n"
    )
    pulled = run_cli("pull", "team", run_id[:12], cwd=other)
    assert pulled.returncode == 0, pulled.stderr
    shown = run_cli("show", run_id, cwd=other)
    assert shown.returncode == 0, shown.stderr
    assert "status:                completed" in shown.stdout
    reproduced = run_cli("reproduce", run_id, "--env", "current", cwd=other, timeout=300)
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
    assert "output model.txt" in reproduced.stdout and "Verdict: REPRODUCED" in reproduced.stdout
    assert "checkout: snapshot" in reproduced.stdout + reproduced.stderr

    # the storage options' secret is nowhere: not in the remote, not in either store
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    for key in s3_keys(s3_endpoint, s3_bucket):
        body = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        assert SECRET.encode() not in body, key
    for store in (repo / ".replicator", other / ".replicator"):
        for path in store.rglob("*"):
            assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path


def test_unreachable_and_missing_bucket_are_one_line_errors(
    repo: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    from .conftest import free_port

    record_run(repo)
    write_remote(repo, s3_endpoint, "no-such-bucket", secret=SECRET)
    missing = run_cli("push", "team", cwd=repo)
    assert missing.returncode == 1
    assert missing.stderr.startswith(
        "Error: Remote team: the bucket 'no-such-bucket' does not exist"
    )
    assert len(missing.stderr.strip().splitlines()) == 1 and SECRET not in missing.stderr

    closed = f"http://127.0.0.1:{free_port()}"
    (repo / "replicator.yaml").write_text(
        "remotes:\n  team:\n    url: s3://x/y\n    storage_options:\n"
        f"      endpoint_url: {closed}\n"
        "      config_kwargs: {retries: {max_attempts: 1}, connect_timeout: 1}\n"
    )
    down = run_cli("ls", "--remote", "team", cwd=repo, timeout=60)
    assert down.returncode == 1
    assert down.stderr.strip().splitlines() == [down.stderr.strip()]
    assert down.stderr.startswith("Error: Cannot list remote team: Could not connect")


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("nope://bucket/x", "Error: Remote nope://bucket/x: Protocol not known: nope."),
        ("team", "Error: No remote named 'team' under 'remotes:' in replicator.yaml."),
        (
            "ssh://bob:hunter2@127.0.0.1:1/srv",
            "Error: Remote ssh://<redacted>@127.0.0.1:1/srv:",
        ),
    ],
)
def test_bad_remote_is_a_one_line_error(repo: Path, remote: str, expected: str) -> None:
    proc = run_cli("push", remote, cwd=repo)
    assert proc.returncode == 1
    assert proc.stderr.startswith(expected)
    assert len(proc.stderr.strip().splitlines()) == 1 and "hunter2" not in proc.stderr
