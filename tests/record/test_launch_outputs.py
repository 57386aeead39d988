"""A shell redirect of `replicator run` is not an output of the run (issue 11, item 11)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from replicator.store import Store

from ..conftest import git, run_cli


def test_shell_redirect_is_not_an_output_and_the_run_reproduces(repo: Path) -> None:
    (repo / "ok.py").write_text("print('ok')\nopen('out.txt', 'w').write('1')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ok")
    launcher = shlex.join([sys.executable, "-m", "replicator", "run", "--seed", "1"])
    shell = subprocess.run(
        f"{launcher} -- python ok.py > run.log 2> err.log", shell=True, cwd=repo, timeout=120
    )
    assert shell.returncode == 0
    assert "ok" in (repo / "run.log").read_text()
    (record,) = Store(repo / ".replicator").records()
    outputs = json.loads((record.dir / "outputs.json").read_text())
    assert [f["path"] for f in outputs["files"]] == ["out.txt"]
    assert [i["path"] for i in outputs["ignored"]] == ["err.log", "run.log"]
    shown = run_cli("show", record.id, cwd=repo).stdout
    assert "\nOutputs (detected: files the command created or changed)\n" in shown
    assert "out.txt:               1 bytes blake3:" in shown
    assert "detected: new file" in shown
    assert "run.log:               the recorder's own stdout (a redirect), not an output" in shown
    reproduced = run_cli("reproduce", record.id, "--env", "current", cwd=repo)
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
    assert "Verdict: REPRODUCED" in reproduced.stdout
