"""Code capture: commit, branch, remote, dirty flag and a snapshot commit of the working tree.

The snapshot holds the exact working tree, untracked (non-ignored) files included. It is built
with a temporary index seeded from the user's own index (so unchanged files are not re-hashed),
committed with ``git commit-tree`` on top of HEAD and kept from garbage collection under
``refs/replicator/snapshots/RUN_ID``. The user's branch, index, stash and working tree are
never touched. A plain patch (snapshot versus HEAD, binary-safe) is written next to the run.

What the snapshot would take beyond HEAD (untracked and changed files) is screened before git
hashes anything: a file holding a secret (the release-check rules,
:func:`replicator.redact.find_secrets`), an untracked file over the size limit, and the known
output folders of ML tools (Hydra's ``outputs/``, ``multirun/``, ...) are left out, and listed
in :attr:`CodeState.left_out`. A tracked file left out keeps its HEAD version in the snapshot.

:func:`git` is the one way replicator runs git (capture, reproduce's checkouts, release export):
never prompting, messages in English, failures as :class:`~replicator.errors.GitError`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from .._util.format import format_size
from ..errors import GitError
from ..redact import clean_remote_url, find_secrets

__all__ = [
    "OUTPUT_FOLDERS",
    "SNAPSHOT_MAX_FILE_SIZE",
    "CodeState",
    "GitResult",
    "LeftOut",
    "capture_code",
    "git",
    "git_root",
    "git_stream",
]

SNAPSHOT_REF_PREFIX = "refs/replicator/snapshots/"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "replicator",
    "GIT_AUTHOR_EMAIL": "replicator@localhost",
    "GIT_COMMITTER_NAME": "replicator",
    "GIT_COMMITTER_EMAIL": "replicator@localhost",
}


SNAPSHOT_MAX_FILE_SIZE = 5 * 1024 * 1024
"""Untracked files larger than this (bytes) stay out of a snapshot by default."""
OUTPUT_FOLDERS = frozenset(
    {"outputs", "multirun", "lightning_logs", "wandb", "mlruns", ".replicator"}
)
"""Folders that ML tools write runs into (Hydra, Lightning, W&B, MLflow, replicator's store):
their untracked files are results and logs, not code, and stay out of a snapshot."""
_SCAN_LIMIT = 20 * 1024 * 1024  # a changed tracked file larger than this is taken unscanned


@dataclass(frozen=True)
class LeftOut:
    """A file (or output folder) kept out of a snapshot: ``reason`` is 'secret', 'size' or
    'output folder'; ``detail`` names the rule(s), the size or the folder."""

    path: str
    reason: str
    detail: str

    @property
    def message(self) -> str:
        """One line for a warning: what was left out and why."""
        if self.reason == "secret":
            return f"{self.path} holds a secret ({self.detail})"
        if self.reason == "size":
            return f"{self.path} is larger than the snapshot limit ({self.detail})"
        return f"{self.path}/ is an output folder ({self.detail})"


@dataclass(frozen=True)
class CodeState:
    """Git facts of a run. ``repo`` is None outside a repository (``note`` says so)."""

    repo: str | None
    commit: str | None = None
    branch: str | None = None
    remote: str | None = None
    dirty: bool | None = None
    snapshot: str | None = None
    snapshot_ref: str | None = None
    snapshot_tree: str | None = None
    changed_files: int = 0
    untracked_files: int = 0
    relative_cwd: str | None = None
    note: str | None = None
    left_out: tuple[LeftOut, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GitResult:
    """What one git command returned: its exit status, its output and its error output."""

    command: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        """Whether git exited with status 0."""
        return self.returncode == 0

    @property
    def text(self) -> str:
        """The output as text, stripped (bytes that are not UTF-8 kept as surrogates)."""
        return self.stdout.decode("utf-8", "surrogateescape").strip()

    @property
    def message(self) -> str:
        """Git's error output as text, stripped: what an error message quotes."""
        return self.stderr.decode("utf-8", "replace").strip()

    def fields(self) -> list[str]:
        """The NUL-separated fields of ``-z`` output, unstripped (paths keep their spaces)."""
        return [f for f in self.stdout.decode("utf-8", "surrogateescape").split("\0") if f]


def git(
    cwd: str | os.PathLike[str],
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> GitResult:
    """Run ``git ARGS`` in ``cwd``, never prompting, with messages in English.

    ``env`` adds to the process environment. With ``check`` a failure raises :class:`GitError`
    (``git ARG ARG failed in CWD: <git's message>``); without, the caller reads ``returncode``.
    A missing git binary or directory raises OSError, a timeout ``subprocess.TimeoutExpired``.
    """
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=_environment(env),
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    result = GitResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)
    if check and not result.ok:
        raise GitError(args, cwd, result.message)
    return result


@contextmanager
def git_stream(cwd: str | os.PathLike[str], *args: str) -> Iterator[IO[bytes]]:
    """The output of a long git command (``git log -p --all``) to read as it comes.

    Set up like :func:`git`; git's error output is discarded. Leaving the block stops git if it
    is still running, so a reader may stop early.
    """
    proc = subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        env=_environment(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        yield proc.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.wait()


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    return {
        **os.environ,
        **(env or {}),
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        # `git status` must not refresh the user's index behind their back
        "GIT_OPTIONAL_LOCKS": "0",
    }


def git_root(path: str | os.PathLike[str]) -> Path | None:
    """The top of the git working tree containing ``path``, or None."""
    if shutil.which("git") is None:
        return None
    try:
        out = git(path, "rev-parse", "--show-toplevel").text
    except (GitError, OSError):
        return None
    return Path(out) if out else None


def capture_code(
    cwd: str | os.PathLike[str],
    *,
    run_id: str,
    patch_path: str | os.PathLike[str] | None = None,
    exclude: list[str] | tuple[str, ...] = (),
    max_file_size: int | None = SNAPSHOT_MAX_FILE_SIZE,
) -> CodeState:
    """Record git facts for ``cwd`` and make the snapshot commit; never raises for a missing repo.

    ``exclude`` lists paths (relative to the repository root) kept out of the snapshot, such as
    the store directory when it is not ignored. Untracked files over ``max_file_size`` bytes
    (None: no limit), files holding a secret and output folders are left out too
    (:attr:`CodeState.left_out`).
    """
    if shutil.which("git") is None:
        return CodeState(repo=None, note="git is not installed; code was not captured")
    root = git_root(cwd)
    if root is None:
        return CodeState(repo=None, note="not inside a git repository; code was not captured")
    try:
        return _capture(root, Path(cwd), run_id, patch_path, exclude, max_file_size)
    except GitError as exc:
        command = " ".join(exc.command[:2])
        return CodeState(repo=str(root), note=f"git failed (git {command}): {exc.stderr[:300]}")


def _capture(
    root: Path, cwd: Path, run_id: str, patch_path: Any, exclude: Any, max_file_size: int | None
) -> CodeState:
    head = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).text or None
    branch = git(root, "symbolic-ref", "--short", "-q", "HEAD", check=False).text or None
    remote = _remote(root, branch)
    tree, left_out = _working_tree(root, exclude, max_file_size)
    status = git(root, "status", "--porcelain=v1", "-uall", "--no-renames", check=False).text
    untracked = sum(1 for line in status.splitlines() if line.startswith("??"))
    changed = sum(1 for line in status.splitlines() if line and not line.startswith("??"))
    head_tree = git(root, "rev-parse", f"{head}^{{tree}}").text if head else None
    dirty = tree != head_tree
    message = f"replicator snapshot for run {run_id}\n\nbase: {head or '(no commit)'}\n"
    args = ["commit-tree", tree, "-m", message]
    if head:
        args[2:2] = ["-p", head]
    snapshot = git(root, *args, env=_IDENTITY).text
    ref = SNAPSHOT_REF_PREFIX + run_id
    git(root, "update-ref", ref, snapshot)
    if patch_path is not None:
        base = head or git(root, "hash-object", "-t", "tree", "/dev/null").text
        patch = git(root, "diff", "--binary", "--no-color", "--no-ext-diff", base, snapshot).stdout
        Path(patch_path).write_bytes(patch)
    try:
        rel = str(cwd.resolve().relative_to(root.resolve()))
    except ValueError:
        rel = None
    return CodeState(
        repo=str(root),
        commit=head,
        branch=branch,
        remote=remote,
        dirty=dirty,
        snapshot=snapshot,
        snapshot_ref=ref,
        snapshot_tree=tree,
        changed_files=changed,
        untracked_files=untracked,
        relative_cwd=rel,
        note=None if head else "the repository has no commit yet; the snapshot has no parent",
        left_out=tuple(left_out),
    )


def _working_tree(
    root: Path, exclude: Any = (), max_file_size: int | None = SNAPSHOT_MAX_FILE_SIZE
) -> tuple[str, list[LeftOut]]:
    """The tree id of the working tree (untracked, non-ignored files included) and what was left
    out of it; touches nothing of the user's."""
    git_dir = Path(git(root, "rev-parse", "--absolute-git-dir").text)
    with tempfile.TemporaryDirectory(prefix="replicator-index-") as tmp:
        tmp_index = os.path.join(tmp, "index")
        user_index = git_dir / "index"
        if user_index.exists():
            # Starting from the user's index keeps git's stat cache: only changed files are hashed.
            # copy2 keeps the index's mtime: git's racy-clean check compares file mtimes with
            # it, and a fresh mtime would make a same-size edit in the same second look clean.
            shutil.copy2(user_index, tmp_index)
        env = {"GIT_INDEX_FILE": tmp_index, **_IDENTITY}
        left_out = _screen(root, env, max_file_size)
        # Left-out files are never hashed: their content must not reach .git even unreachable.
        specs = [".", *(f":(exclude,literal){item.path}" for item in left_out)]
        _git_with_pathspecs(root, ["add", "-A"], specs, env)
        literal = [f":(literal){item.path}" for item in left_out if item.reason == "secret"]
        if literal:
            # A tracked (or staged) file with a secret keeps its HEAD version, or none.
            head = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).text
            if head:
                _git_with_pathspecs(root, ["reset", "-q", head], literal, env, check=False)
            else:
                _git_with_pathspecs(
                    root, ["rm", "-r", "-q", "--cached", "--ignore-unmatch"], literal, env
                )
        for path in exclude:
            git(root, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", path, env=env)
        return git(root, "write-tree", env=env).text, left_out


def _git_with_pathspecs(
    root: Path, args: list[str], specs: list[str], env: Mapping[str, str], *, check: bool = True
) -> None:
    # Through stdin: thousands of paths would not fit on a command line.
    data = b"".join(os.fsencode(s) + b"\0" for s in specs)
    git(
        root,
        *args,
        "--pathspec-from-file=-",
        "--pathspec-file-nul",
        env=env,
        input=data,
        check=check,
    )


def _screen(root: Path, env: Mapping[str, str], max_file_size: int | None) -> list[LeftOut]:
    """What the snapshot must not take: output folders, big untracked files, files with secrets."""
    untracked = git(root, "ls-files", "-z", "--others", "--exclude-standard", env=env).fields()
    head = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False, env=env).text
    if head:
        # On the temporary index: a file only touched (same content) is no change.
        git(root, "update-index", "-q", "--refresh", env=env, check=False)
        changed = git(root, "diff-index", "-z", "--name-only", head, "--", env=env).fields()
    else:
        changed = git(root, "ls-files", "-z", "--cached", env=env).fields()
    left_out: list[LeftOut] = []
    folders: set[str] = set()
    for path in untracked:
        folder = _output_folder(path)
        if folder is not None:
            if folder not in folders:
                folders.add(folder)
                name = folder.rsplit("/", 1)[-1]
                left_out.append(LeftOut(folder, "output folder", f"{name}/ holds run outputs"))
            continue
        size = _file_size(root / path)
        if size is None:
            continue
        if max_file_size is not None and size > max_file_size:
            detail = f"{format_size(size)} > {format_size(max_file_size)}"
            left_out.append(LeftOut(path, "size", detail))
            continue
        _screen_secrets(root, path, left_out)
    for path in changed:
        size = _file_size(root / path)
        if size is not None and size <= _SCAN_LIMIT:
            _screen_secrets(root, path, left_out)
    return left_out


def _output_folder(path: str) -> str | None:
    parts = path.split("/")
    for i, part in enumerate(parts[:-1]):
        if part in OUTPUT_FOLDERS:
            return "/".join(parts[: i + 1])
    return None


def _file_size(path: Path) -> int | None:
    """The size of a regular file (None for a link, a missing file or anything else)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _screen_secrets(root: Path, path: str, left_out: list[LeftOut]) -> None:
    try:
        text = (root / path).read_bytes().decode("utf-8", "replace")
    except OSError:
        return
    rules = sorted({hit.rule for hit in find_secrets(text)})
    if rules:
        left_out.append(LeftOut(path, "secret", "rule " + ", ".join(rules)))


def working_tree_id(path: str | os.PathLike[str]) -> str | None:
    """The tree id of the working tree of the repository holding ``path`` (None outside git).

    Equal ids mean equal content, so a dirty editable package can be compared with the snapshot
    recorded for it without making a commit.
    """
    root = git_root(path)
    if root is None:
        return None
    try:
        return _working_tree(root)[0]
    except (GitError, OSError):
        return None


def _remote(root: Path, branch: str | None) -> str | None:
    name = None
    if branch:
        name = git(root, "config", "--get", f"branch.{branch}.remote", check=False).text or None
    if not name:
        remotes = git(root, "remote", check=False).text.split()
        name = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    if not name:
        return None
    url = git(root, "remote", "get-url", name, check=False).text
    return clean_remote_url(url) if url else None


def package_repo_state(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Commit and dirty flag of the repository holding an editable package's source."""
    root = git_root(path)
    if root is None:
        return None
    commit = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).text or None
    status = git(root, "status", "--porcelain=v1", check=False).text
    return {"repo": str(root), "commit": commit, "dirty": bool(status.strip())}
