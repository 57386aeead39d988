"""Fixtures of the remote-store tests: a project with a real recorded run, copies of it, and a
real S3-compatible server (moto's) on 127.0.0.1, started for the module and stopped after it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import run_cli

TRAIN = """\
import replicator
run = replicator.start()
for step in range(3):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
run.checkpoint({"w": [1.0, 2.0, 3.0]}, step=2, metrics={"loss": 0.33})
with open("model.txt", "w") as f:
    f.write("weights of the model")
"""
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def record_run(project: Path) -> str:
    """A real `replicator run` of a script that logs, checkpoints and declares an output."""
    (project / "train.py").write_text(TRAIN)
    proc = run_cli("run", "--outputs", "model.txt", "--", "python", "train.py", cwd=project)
    assert proc.returncode == 0, proc.stderr
    runs = sorted(p.name for p in (project / ".replicator" / "runs").iterdir())
    return runs[-1]


def copy_runs(project: Path, run_id: str, count: int, *, keep: tuple[str, ...] = ()) -> list[str]:
    """``count`` copies of run ``run_id`` under new ids (only the files in ``keep``, if given)."""
    runs = project / ".replicator" / "runs"
    ids = []
    for i in range(count):
        new_id = f"{run_id}-{i:04d}"
        shutil.copytree(
            runs / run_id,
            runs / new_id,
            ignore=(lambda _d, names: [n for n in names if n not in keep]) if keep else None,
        )
        meta = json.loads((runs / new_id / "run.json").read_text())
        meta["id"] = new_id
        (runs / new_id / "run.json").write_text(json.dumps(meta))
        ids.append(new_id)
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (real HTTP, real S3 API), stopped after the module."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """A fresh bucket on the server, credentials in the environment (fsspec's usual place)."""
    import boto3

    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    bucket = "b-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return bucket


def s3_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def clone(source: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(source), str(dest)], check=True)
    return dest
