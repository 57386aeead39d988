"""The copy of a run's output: the terminal gets every byte, stdout.log the same bytes with the
secrets (and only the secrets) replaced, whatever reads the output arrives in.

Real `replicator run` commands in a real git repository; the secret values are built at run time.
"""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
from pathlib import Path

from replicator.store import Store

from ..conftest import git, run_cli

ALNUM = string.ascii_letters + string.digits


def _commit(repo: Path, name: str, source: str) -> None:
    (repo / name).write_text(source)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)


def _run_bytes(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """The real command, its output as bytes (run_cli's text mode would turn \r into \n)."""
    return subprocess.run(
        [sys.executable, "-m", "replicator", *args],
        env={**os.environ, **env},
        capture_output=True,
        timeout=120,
    )


def _record(repo: Path):
    (record,) = Store(repo / ".replicator").records()
    return record


# Writes the first half of the secret, waits until the launcher has read it, then the rest: the
# secret arrives in two reads.
SPLIT = r"""
import os, sys, time
key = os.environ["TRAINER_API_KEY"]
hub = "hf" + "_" + os.environ["HUB_BODY"]
for value in (key, hub):
    half = len(value) // 2
    sys.stdout.write(f"using {value[:half]}")
    sys.stdout.flush()
    time.sleep(0.3)
    sys.stdout.write(f"{value[half:]} now\n")
    sys.stdout.flush()
print("done")
"""


def test_a_secret_split_over_two_reads_is_redacted(repo: Path) -> None:
    rng = random.Random(5)
    key = "".join(rng.choice(ALNUM) for _ in range(30))
    hub_body = "".join(rng.choice(string.ascii_letters) for _ in range(34))
    _commit(repo, "split.py", SPLIT)
    proc = run_cli(
        "run", "--", "python", "split.py", env={"TRAINER_API_KEY": key, "HUB_BODY": hub_body}
    )
    assert proc.returncode == 0, proc.stderr
    hub = "hf_" + hub_body
    assert proc.stdout == f"using {key} now\nusing {hub} now\ndone\n"  # the terminal: all of it
    log = (_record(repo).dir / "stdout.log").read_text()
    assert log == "using <redacted> now\nusing <redacted> now\ndone\n"


# A progress bar that never ends its line: 40,000 frames (about 3.5 MB, several times what the
# launcher holds of an unfinished line), tqdm's block characters (3 bytes each in UTF-8, so reads
# and cuts fall inside characters), and the API key in every 997th frame.
BAR = r"""
import os, sys
key = os.environ["TRAINER_API_KEY"]
out = sys.stdout.buffer
blocks = " ▏▎▍▌▋▊▉█"
for i in range(40_000):
    filled = i * 40 // 40_000
    frame = f"\r{i * 100 // 40_000:3d}%|{'█' * filled}{blocks[i % 9]}{' ' * (40 - filled)}| {i}/40000"
    if i % 997 == 0:
        frame += f" key={key}"
    out.write(frame.encode())
    if i % 50 == 0:
        out.flush()
out.write(b"\n")
"""


def test_a_progress_bar_is_copied_byte_for_byte_but_its_secrets(repo: Path) -> None:
    key = "".join(random.Random(7).choice(ALNUM) for _ in range(32))
    _commit(repo, "bar.py", BAR)
    proc = _run_bytes("run", "--", "python", "bar.py", env={"TRAINER_API_KEY": key})
    assert proc.returncode == 0, proc.stderr
    shown = proc.stdout
    assert shown.count(key.encode()) == 41 and len(shown) > 3_000_000
    log = (_record(repo).dir / "stdout.log").read_bytes()
    assert log == shown.replace(key.encode(), b"<redacted>")


def test_a_huge_line_keeps_every_byte_and_loses_its_secrets(repo: Path) -> None:
    """One 6 MB line, no space or \r to cut at, four bytes in five inside a secret: wherever
    the launcher cuts the line to write its head, a cut through a secret would leave a piece."""
    key = "".join(random.Random(9).choice(ALNUM) for _ in range(24))
    _commit(
        repo,
        "huge.py",
        "import os, sys\n"
        "key = os.environ['TRAINER_API_KEY']\n"
        "sys.stdout.write(('abcdef' + key) * 200_000 + '\\n')\n",
    )
    proc = run_cli("run", "--", "python", "huge.py", env={"TRAINER_API_KEY": key})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(key) == 200_000
    log = (_record(repo).dir / "stdout.log").read_text()
    assert log == proc.stdout.replace(key, "<redacted>")


def test_the_working_directory_and_credential_paths_are_not_redacted(repo: Path) -> None:
    """Issue 18 item 5: `sh -c pwd` stored `<redacted>`: $PWD was taken for a password."""
    sa_file = repo.parent / "service-account.json"
    sa_file.write_text("{}\n")
    token = "".join(random.Random(3).choice(ALNUM) for _ in range(28))
    proc = run_cli(
        "run",
        "--",
        "sh",
        "-c",
        'pwd; echo "$OLDPWD"; echo "$GOOGLE_APPLICATION_CREDENTIALS"; echo "$DEPLOY_TOKEN"',
        cwd=repo,
        env={
            "PWD": str(repo),
            "OLDPWD": str(repo.parent),
            "GOOGLE_APPLICATION_CREDENTIALS": str(sa_file),
            "DEPLOY_TOKEN": token,
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{repo}\n{repo.parent}\n{sa_file}\n{token}\n"
    record = _record(repo)
    log = (record.dir / "stdout.log").read_text()
    assert log == f"{repo}\n{repo.parent}\n{sa_file}\n<redacted>\n"  # only the credential
    assert record.meta["cwd"] == str(repo)
