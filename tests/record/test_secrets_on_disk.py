"""Secrets never reach disk: each kind planted, a real `replicator run` in a real git repo, then
every byte of the store and of the repository's objects searched for every planted value.

No secret is written literally here: values are assembled at run time from split prefixes and
random characters (``replicator release check`` passes on replicator's own repository).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest

from replicator.store import Store

from ..conftest import git, run_cli

B64 = string.ascii_letters + string.digits + "+/"
HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits

CHILD = r"""
import hashlib, json, os, sys, time
import replicator

cfg = replicator.load_config("config.yaml")
args = sys.argv[1:]
seen = {
    "api_key": cfg.api_key,
    "remote": cfg.remote,
    "db_pass": args[args.index("--db-pass") + 1],
    "p": args[args.index("-p") + 1],
    "passphrase": args[args.index("--passphrase") + 1],
    "DB_PASS": os.environ["DB_PASS"],
}
# the launcher gave the child the real values: their hashes go outside the project
digests = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in seen.items()}
json.dump(digests, open(os.environ["SEEN_FILE"], "w"))

def slowly(text, stream):
    # one line per read of the launcher: a key block arrives in several reads
    for line in text.splitlines():
        stream.write(line + "\n")
        stream.flush()
        time.sleep(0.02)

slowly(os.environ["SSH_PRIVATE_KEY"], sys.stdout)
slowly(os.environ["SERVICE_ACCOUNT_JSON"], sys.stdout)
slowly(json.loads(os.environ["SERVICE_ACCOUNT_JSON"])["private_key"], sys.stderr)
for name, value in seen.items():
    print(f"{name} is {value}")
    print(f"{name}: {value}", file=sys.stderr)
with replicator.start(cfg) as run:
    run.log({"loss": 0.5}, step=0)
print("trained")
"""


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _pem(rng: random.Random) -> tuple[str, list[str]]:
    body = [_r(rng, B64, 64) for _ in range(8)]
    kind = "PRIVATE" + " KEY"
    return "\n".join([f"-----BEGIN {kind}-----", *body, f"-----END {kind}-----"]), body


@pytest.fixture
def planted(repo: Path, tmp_path: Path) -> dict:
    rng = random.Random(12)
    ssh_key, ssh_body = _pem(rng)
    sa_key, sa_body = _pem(rng)
    sa_key_id = _r(rng, HEX, 40)
    service_account = json.dumps(
        {
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": sa_key_id,
            "private_key": sa_key + "\n",
            "client_email": "trainer@demo-project.iam.gserviceaccount.com",
        },
        indent=2,
    )
    values = {
        "wandb": _r(rng, HEX, 40),
        "hf": "hf" + "_" + _r(rng, string.ascii_letters, 34),
        "api_key": _r(rng, ALNUM, 28),
        "remote": _r(rng, ALNUM, 24),
        "db_pass": _r(rng, ALNUM, 18),
        "p": _r(rng, ALNUM, 16),
        "passphrase": _r(rng, ALNUM, 20),
        "DB_PASS": _r(rng, ALNUM, 22),
        "sa_key_id": sa_key_id,
    }
    (repo / "config.yaml").write_text("lr: 0.1\nremote: ${oc.env:REMOTE_SECRET}\n# remote store\n")
    (repo / "train.py").write_text(CHILD)
    (repo / "settings.py").write_text("BATCH = 32\n")
    (repo / "helper.py").write_text("X = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "training")
    (repo / "helper.py").write_text("X = 2\n")  # a change the snapshot must keep
    (repo / "settings.py").write_text(f'BATCH = 32\nHF_TOKEN = "{values["hf"]}"\n')
    (repo / "notes.py").write_text("Y = 3\n")  # untracked, no secret: kept
    # an earlier run's raw terminal copies, untracked and not ignored
    (repo / "nohup.out").write_text(f"$ wandb login {values['wandb']}\nepoch 1 loss 0.3\n")
    (repo / "slurm-1001.out").write_text(f"export WANDB_API_KEY={values['wandb']}\ndone\n")
    # the value given with --set also sits in an untracked .env, as projects keep them
    (repo / ".env").write_text(f"API_KEY={values['api_key']}\nDEBUG=1\n")
    env = {
        "SSH_PRIVATE_KEY": ssh_key,
        "SERVICE_ACCOUNT_JSON": service_account,
        "REMOTE_SECRET": values["remote"],
        "DB_PASS": values["DB_PASS"],
        "SEEN_FILE": str(tmp_path / "seen.json"),
    }
    lines = [*ssh_body, *sa_body]
    return {"values": values, "lines": lines, "env": env, "seen": tmp_path / "seen.json"}


def _run(repo: Path, planted: dict) -> subprocess.CompletedProcess[str]:
    v = planted["values"]
    return run_cli(
        "run",
        "-c",
        "config.yaml",
        "--set",
        f"+api_key={v['api_key']}",
        "--seed",
        "1",
        "--",
        "python",
        "train.py",
        "--db-pass",
        v["db_pass"],
        "-p",
        v["p"],
        "--passphrase",
        v["passphrase"],
        cwd=repo,
        env=planted["env"],
    )


def _leaks(blob: bytes, planted: dict) -> list[str]:
    needles = {**planted["values"], **{f"key line {i}": s for i, s in enumerate(planted["lines"])}}
    return sorted(name for name, value in needles.items() if value.encode() in blob)


def _store_bytes(repo: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in sorted((repo / ".replicator").rglob("*")) if p.is_file()
    )


def test_no_planted_secret_reaches_the_store_or_the_repository(repo: Path, planted: dict) -> None:
    proc = _run(repo, planted)
    assert proc.returncode == 0, proc.stderr
    # the run still works: the child saw every real value
    v = planted["values"]
    seen = json.loads(planted["seen"].read_text())
    expected = {
        k: hashlib.sha256(v[k].encode()).hexdigest()
        for k in ("api_key", "remote", "db_pass", "p", "passphrase", "DB_PASS")
    }
    assert seen == expected
    (record,) = Store(repo / ".replicator").records()
    assert record.status == "completed"
    assert "trained" in (record.dir / "stdout.log").read_text()

    # every file of the run directory, the code patch included, then grep -r over the store
    patch = record.dir / "code.patch"
    assert (
        b"X = 2" in patch.read_bytes()
    )  # the patch holds the change: searching it means something
    for path in sorted(p for p in record.dir.rglob("*") if p.is_file()):
        assert _leaks(path.read_bytes(), planted) == [], path
    assert _leaks(_store_bytes(repo), planted) == []
    # every snapshot ref: git grep over its tree, and every object it reaches
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/replicator/snapshots").split()
    assert refs == [f"refs/replicator/snapshots/{record.id}"]
    needles = [*planted["values"].values(), *planted["lines"]]
    for ref in refs:
        grep = subprocess.run(
            ["git", "grep", "-F", "-I", "-c", *(a for n in needles for a in ("-e", n)), ref],
            cwd=repo,
            capture_output=True,
        )
        assert grep.returncode == 1 and grep.stdout == b"", grep.stdout  # 1: nothing found
        objects = git(repo, "rev-list", "--objects", ref).split("\n")
        reached = b"".join(
            subprocess.run(
                ["git", "cat-file", "-p", line.split()[0]],
                cwd=repo,
                capture_output=True,
                check=True,
            ).stdout
            for line in objects
        )
        assert _leaks(reached, planted) == []
    # the snapshot ref, as a patch and as every blob of its tree
    ref = f"refs/replicator/snapshots/{record.id}"
    log = subprocess.run(
        ["git", "log", "-p", "--all", "--binary"], cwd=repo, capture_output=True, check=True
    ).stdout
    assert _leaks(log, planted) == []
    tree = git(repo, "ls-tree", "-r", "--name-only", ref).split("\n")
    blobs = b"".join(
        subprocess.run(
            ["git", "cat-file", "-p", f"{ref}:{path}"], cwd=repo, capture_output=True, check=True
        ).stdout
        for path in tree
    )
    assert _leaks(blobs, planted) == []
    # not even an unreachable object: what was left out was never hashed
    every_object = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    assert _leaks(every_object, planted) == []

    # the snapshot keeps the code; what was left out is said, with file and rule
    assert {"train.py", "helper.py", "notes.py", "settings.py"} <= set(tree)
    assert "nohup.out" not in tree and "slurm-1001.out" not in tree and ".env" not in tree
    assert git(repo, "show", f"{ref}:helper.py") == "X = 2"
    assert git(repo, "show", f"{ref}:settings.py") == "BATCH = 32"  # HEAD's version
    code = json.loads((record.dir / "code.json").read_text())
    left = {item["path"]: item for item in code["left_out"]}
    assert left["nohup.out"]["reason"] == "secret"
    assert "wandb-api-key" in left["nohup.out"]["detail"]
    assert "huggingface-token" in left["settings.py"]["detail"]
    assert left[".env"]["reason"] == "secret"
    assert set(left) == {"nohup.out", "slurm-1001.out", "settings.py", ".env"}
    warnings = [
        line for line in proc.stderr.splitlines() if "left out of the code snapshot" in line
    ]
    assert len(warnings) == 4
    assert any("settings.py holds a secret (rule huggingface-token)" in w for w in warnings)

    # redacted, not dropped: the record still says which keys were set
    config = (record.dir / "config.yaml").read_text()
    assert "api_key: <redacted>" in config and "remote: <redacted>" in config
    assert "lr: 0.1" in config
    assert "api_key=<redacted>" in json.dumps(record.meta["overrides"])


def test_config_hash_is_the_same_for_any_value_of_a_secret(repo: Path, planted: dict) -> None:
    """The hash is of the recorded (redacted) config: a reproduction, which only sees the
    record, and a run with a rotated key get the same hash."""
    assert _run(repo, planted).returncode == 0
    planted["values"]["api_key"] = "another-key-" + "7" * 12
    planted["env"]["REMOTE_SECRET"] = "another-remote-" + "8" * 12
    planted["env"]["DB_PASS"] = "x" * 8
    proc = _run(repo, planted)
    assert proc.returncode == 0, proc.stderr
    first, second = sorted(Store(repo / ".replicator").records(), key=lambda r: r.id)
    assert first.meta["config_hash"] == second.meta["config_hash"]


def test_resume_asks_again_for_a_secret_given_with_set(repo: Path, planted: dict) -> None:
    assert _run(repo, planted).returncode == 0
    (record,) = Store(repo / ".replicator").records()
    v = planted["values"]
    command = ["--", "python", "train.py", "--db-pass", v["db_pass"], "-p", v["p"]]
    command += ["--passphrase", v["passphrase"]]
    refused = run_cli(
        "run", "--resume", record.id, "--resume-completed", *command, cwd=repo, env=planted["env"]
    )
    assert refused.returncode == 2
    assert "api_key held a secret" in refused.stderr
    assert f"replicator run --resume {record.id} --set +api_key=..." in refused.stderr
    planted["seen"].unlink()
    resumed = run_cli(
        "run",
        "--resume",
        record.id,
        "--resume-completed",
        "--set",
        f"+api_key={v['api_key']}",
        *command,
        cwd=repo,
        env=planted["env"],
    )
    assert resumed.returncode == 0, resumed.stderr
    seen = json.loads(planted["seen"].read_text())
    assert seen["api_key"] == hashlib.sha256(v["api_key"].encode()).hexdigest()
    assert _leaks(_store_bytes(repo), planted) == []


def test_big_untracked_files_and_output_folders_stay_out_of_the_snapshot(repo: Path) -> None:
    (repo / "train.py").write_text("print('ok')\n")
    (repo / "model.ckpt").write_bytes(b"\0" * (6 * 1024 * 1024))
    (repo / "outputs" / "2026-01-01").mkdir(parents=True)
    (repo / "outputs" / "2026-01-01" / "result.txt").write_text("loss 0.1\n")
    (repo / "sub" / "multirun" / "0").mkdir(parents=True)
    (repo / "sub" / "multirun" / "0" / "out.txt").write_text("x\n")
    (repo / "sub" / "lightning_logs").mkdir()
    (repo / "sub" / "lightning_logs" / "events").write_text("y\n")

    proc = run_cli("run", "--", "python", "train.py", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    (record,) = Store(repo / ".replicator").records()
    ref = f"refs/replicator/snapshots/{record.id}"
    tree = set(git(repo, "ls-tree", "-r", "--name-only", ref).split("\n"))
    assert "train.py" in tree
    assert not [p for p in tree if p.endswith(("model.ckpt", "result.txt", "out.txt", "events"))]
    left = {
        i["path"]: i["reason"]
        for i in json.loads((record.dir / "code.json").read_text())["left_out"]
    }
    assert left == {
        "model.ckpt": "size",
        "outputs": "output folder",
        "sub/multirun": "output folder",
        "sub/lightning_logs": "output folder",
    }
    assert "model.ckpt is larger than the snapshot limit (6.0 MiB > 5.0 MiB)" in proc.stderr
    assert b"\0" * 4096 not in (record.dir / "code.patch").read_bytes()

    proc = run_cli("run", "--snapshot-max-size", "10MiB", "--", "python", "train.py", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    second = max(Store(repo / ".replicator").records(), key=lambda r: r.id)
    tree = git(repo, "ls-tree", "-r", "--name-only", f"refs/replicator/snapshots/{second.id}")
    assert "model.ckpt" in tree.split("\n")

    bad = run_cli("run", "--snapshot-max-size", "lots", "--", "python", "train.py", cwd=repo)
    assert bad.returncode == 2
    assert "'lots' is not a size such as 5MiB" in bad.stderr


LONG_LINE = r"""
import os, sys
secret = os.environ["DB_PASS"]
# a 3 MB line without a newline until its end, the secret all along it and across read
# boundaries; then a progress bar drawn with carriage returns
chunk = "x" * 65530 + " " + secret + " "
for _ in range(50):
    sys.stdout.write(chunk)
    sys.stdout.flush()
sys.stdout.write(secret * 3 + "\n")
for i in range(5000):
    sys.stdout.write(f"\r{i} it/s token={secret}")
sys.stdout.write("\ndone\n")
"""


def test_a_line_longer_than_the_window_is_scrubbed_whole(repo: Path) -> None:
    secret = _r(random.Random(5), ALNUM, 20)
    (repo / "long.py").write_text(LONG_LINE)
    proc = run_cli("run", "--", "python", "long.py", cwd=repo, env={"DB_PASS": secret})
    assert proc.returncode == 0, proc.stderr
    (record,) = Store(repo / ".replicator").records()
    log = (record.dir / "stdout.log").read_bytes()
    assert secret.encode() not in log
    lines = log.split(b"\n")
    assert lines[0].count(b"<redacted>") == 53
    assert lines[0].count(b"x" * 65530) == 50
    assert lines[1].count(b"\r") == 5000
    assert lines[1].count(b"token=<redacted>") == 5000
    assert lines[-2:] == [b"done", b""]


def test_plain_python_start_records_the_config_redacted(repo: Path, tmp_path: Path) -> None:
    """The Python API path (no launcher): run.json, config.yaml and the hash hold no secret,
    while the script's config keeps the real value."""
    rng = random.Random(7)
    secret = _r(rng, ALNUM, 28)
    (repo / "t.py").write_text(
        "import os, replicator\n"
        "cfg = {'lr': 0.1, 'api_key': os.environ['MY_KEY_VALUE']}\n"
        "with replicator.start(cfg, experiment='plain') as run:\n"
        "    assert run.config['api_key'] == os.environ['MY_KEY_VALUE']\n"
        "    run.log({'loss': 0.5}, step=0)\n"
    )
    env = {**os.environ, "MY_KEY_VALUE": secret}
    proc = subprocess.run(
        [sys.executable, "t.py"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert secret.encode() not in _store_bytes(repo)
    run = Store(repo / ".replicator").records()[0]
    recorded = json.loads((run.dir / "run.json").read_text())
    assert recorded["config"]["api_key"] == "<redacted>"
    assert recorded["config"]["lr"] == 0.1


def test_script_json_holds_no_secret_while_the_run_is_alive(repo: Path) -> None:
    """config/script.json is written when the script loads its config, long before the launcher
    ends: it must be redacted from the start, not only rewritten at the end."""
    rng = random.Random(8)
    secret = _r(rng, ALNUM, 28)
    (repo / "config.yaml").write_text("lr: 0.1\n")
    (repo / "t.py").write_text(
        "import os, time, replicator\n"
        "cfg = replicator.load_config('config.yaml')\n"
        "script = os.path.join(os.environ['REPLICATOR_RUN_DIR'], 'config', 'script.json')\n"
        "with open(os.environ['COPY_TO'], 'wb') as out, open(script, 'rb') as f:\n"
        "    out.write(f.read())\n"
    )
    copy = repo.parent / "script-copy.json"
    proc = run_cli(
        "run", "-c", "config.yaml", "--set", f"+api_key={secret}", "--", "python", "t.py",
        cwd=repo, env={"COPY_TO": str(copy)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert secret.encode() not in copy.read_bytes()
    assert json.loads(copy.read_text())["config"]["api_key"] == "<redacted>"
