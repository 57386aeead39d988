"""release export: one commit of HEAD's tracked files, refused when the copy holds errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from release_secrets_fixture import make_secrets

from replicator.cli.main import cli
from replicator.errors import ReplicatorError, UsageError
from replicator.release import export_release


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    _git(root, "init", "-q")
    (root / ".gitignore").write_text("data/\n")
    (root / "README.md").write_text("# X\n")
    (root / "train.py").write_text("print(1)\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "one")
    (root / "train.py").write_text("print(2)\n")
    _git(root, "commit", "-qam", "two")
    return root


def test_export_has_one_commit_with_tracked_files_only(repo: Path, tmp_path: Path) -> None:
    (repo / "data").mkdir()
    (repo / "data" / "big.csv").write_text("1,2\n")  # ignored
    (repo / "notes.txt").write_text("untracked\n")  # untracked
    (repo / "train.py").write_text("print('uncommitted')\n")  # uncommitted change
    (repo / ".replicator" / "runs").mkdir(parents=True)
    (repo / ".replicator" / "runs" / "x.json").write_text("{}")
    index_before = (repo / ".git" / "index").read_bytes()

    dest = tmp_path / "public"
    result = export_release(repo, dest, message="Code for the paper")
    assert result.files == 4
    assert _git(dest, "rev-list", "--count", "HEAD") == "1"
    assert _git(dest, "log", "-1", "--format=%s") == "Code for the paper"
    files = sorted(_git(dest, "ls-files").splitlines())
    assert files == [".gitignore", "README.md", "run.sh", "train.py"]
    assert (dest / "train.py").read_text() == "print(2)\n"
    assert (dest / "run.sh").stat().st_mode & 0o111
    assert not (dest / ".replicator").exists() and not (dest / "data").exists()
    assert result.source_commit == _git(repo, "rev-parse", "HEAD")
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert (repo / "train.py").read_text() == "print('uncommitted')\n"


def test_export_refused_on_secrets_and_dest_removed(repo: Path, tmp_path: Path, run_cli) -> None:
    value = make_secrets(11)["wandb"][1]
    (repo / "conf.py").write_text(f'wandb.login(key="{value}")\n')
    _git(repo, "add", "conf.py")
    _git(repo, "commit", "-qm", "leak")
    dest = tmp_path / "public"
    with pytest.raises(
        ReplicatorError, match=r"(?s)Export refused.*conf.py:1.*wandb-api-key"
    ) as info:
        export_release(repo, dest)
    assert value not in str(info.value)
    assert not dest.exists()
    code, _, err = run_cli("release", "export", str(dest), "--source", str(repo))
    assert code == 1 and "Export refused" in err and not dest.exists()


def test_export_usage_errors(repo: Path, tmp_path: Path, run_cli) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        export_release(repo, busy)
    with pytest.raises(UsageError, match="inside the repository"):
        export_release(repo, repo / "out")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UsageError, match="not a git repository"):
        export_release(plain, tmp_path / "d")
    code, _, err = run_cli("release", "export", str(busy), "--source", str(repo))
    assert code == 2 and "not empty" in err


def test_export_cli_json(repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "pub"
    res = CliRunner().invoke(cli, ["release", "export", str(dest), "--source", str(repo), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["files"] == 4 and data["commit"] == _git(dest, "rev-parse", "HEAD")


def test_export_commit_author_is_the_users_else_replicator(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test environment names an author in GIT_AUTHOR_NAME...: the export keeps it.
    export_release(repo, tmp_path / "with-identity")
    assert _git(tmp_path / "with-identity", "log", "-1", "--format=%an|%ae|%cn") == (
        "Test Author|author@example.com|Test Author"
    )
    # Without any identity (no variables, no global config) the commit is replicator's.
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    export_release(repo, tmp_path / "anonymous")
    log = subprocess.run(
        ["git", "log", "-1", "--format=%an|%ae|%cn|%ce"],
        cwd=tmp_path / "anonymous",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert log == "replicator|replicator@localhost|replicator|replicator@localhost"
