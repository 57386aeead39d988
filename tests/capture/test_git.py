"""The one git wrapper: its errors, its output forms, and the callers' messages built on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from replicator.capture.git import capture_code, git, git_stream
from replicator.errors import GitError, ReplicatorError
from replicator.release import export_release
from replicator.reproduce import ReproduceError, checkout_commit


def test_a_failing_command_names_itself_the_directory_and_gits_words(repo: Path) -> None:
    with pytest.raises(
        GitError, match=r"^git rev-parse --verify failed in .*project: fatal: "
    ) as e:
        git(repo, "rev-parse", "--verify", "no-such-branch")
    assert isinstance(e.value, ReplicatorError)
    assert e.value.command == ("rev-parse", "--verify", "no-such-branch")
    assert e.value.cwd == str(repo)
    assert e.value.stderr.startswith("fatal: ")


def test_without_check_the_caller_reads_the_status(repo: Path) -> None:
    result = git(repo, "rev-parse", "--verify", "-q", "no-such-branch", check=False)
    assert (result.ok, result.returncode, result.text) == (False, 1, "")
    head = git(repo, "rev-parse", "HEAD")
    assert head.ok and len(head.text) == 40 and head.stdout.endswith(b"\n")


def test_nul_separated_output_keeps_every_character_of_a_path(repo: Path) -> None:
    (repo / " leading space.txt").write_text("x")
    (repo / "caf\u00e9.txt").write_text("x")
    git(repo, "add", "-A")
    assert git(repo, "ls-files", "-z").fields() == [
        " leading space.txt",
        ".gitignore",
        "README.md",
        "caf\u00e9.txt",
    ]


def test_env_adds_to_the_environment(repo: Path) -> None:
    env = {"GIT_AUTHOR_NAME": "Someone Else", "GIT_AUTHOR_EMAIL": "else@example.com"}
    tree = git(repo, "write-tree").text
    commit = git(repo, "commit-tree", tree, "-m", "m", env=env).text
    # the author comes from env, the committer still from the process environment
    assert git(repo, "log", "-1", "--format=%an|%cn", commit).text == "Someone Else|Test Author"


def test_input_is_fed_to_git(repo: Path) -> None:
    blob = git(repo, "hash-object", "-w", "--stdin", input=b"hello\n").text
    assert git(repo, "cat-file", "-p", blob).stdout == b"hello\n"


def test_a_git_failure_during_capture_is_a_note_not_an_error(repo: Path, tmp_path: Path) -> None:
    # A corrupt HEAD object: rev-parse still answers, building the snapshot fails.
    (repo / ".git" / "refs" / "heads" / "main").write_text("0" * 40 + "\n")
    state = capture_code(repo, run_id="r1")
    assert state.repo == str(repo)
    assert state.snapshot is None
    assert state.note is not None and state.note.startswith("git failed (git ")


def test_release_export_keeps_the_message_of_a_failing_git(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ReplicatorError, match=r"not a git repository.*git rev-parse --show-top"):
        export_release(plain, tmp_path / "out")


def test_reproduce_names_the_missing_commit(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(ReproduceError, match=r"stage 'environment': commit 000000000000 is not"):
        checkout_commit(repo, "0" * 40, tmp_path / "co")


def test_a_stream_can_be_left_early(repo: Path) -> None:
    for i in range(3):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"c{i}")
    with git_stream(repo, "log", "--format=%H") as out:
        first = next(iter(out))
    assert first.strip().decode() == git(repo, "rev-parse", "HEAD").text
    assert out.closed
