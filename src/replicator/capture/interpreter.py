"""The Python interpreter a command runs, also behind wrappers, and how it was found.

``replicator run -- python train.py`` names its interpreter, but real commands often do not:
``sh -c '/opt/venv2/bin/python train.py'``, ``bash train.sh``, ``torchrun --nproc_per_node 2
train.py`` (a console script whose shebang names the interpreter), ``uv run train.py``,
``poetry run python train.py``, ``conda run -n env python train.py``, ``accelerate launch
train.py``, ``nohup python ...``, ``srun python ...``. :func:`find_interpreter` follows each of
these, without running the command, and says which rule found the interpreter, so that the
environment recorded is the one the script imports its packages from.

Rules, in order: a shell with ``-c`` (its string is parsed) or with a script file (the script's
lines are read); ``uv run``, ``poetry run`` and ``conda run`` (the project's or the named
environment); the first word of the command that is a Python interpreter; the shebang of the
program the command starts (console scripts such as ``torchrun`` and ``accelerate``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Interpreter", "find_interpreter", "is_python"]

_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# Shell words that separate commands in a ``-c`` string or a script line.
_SEPARATORS = frozenset(
    {"&&", "||", ";", ";;", "|", "&", "(", ")", "{", "}", "then", "do", "else", "<", ">", ">>"}
)
_MAX_SCRIPT_BYTES = 256 * 1024
_MAX_DEPTH = 4


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter (``path``) and the rule that found it (``how``, for people)."""

    path: str
    how: str


def find_interpreter(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> Interpreter | None:
    """The interpreter ``command`` runs its Python with, or None when none can be found."""
    environ = dict(os.environ if env is None else env)
    return _find(list(command), environ, Path(cwd or os.getcwd()), 0)


def is_python(word: str) -> bool:
    """Whether a command word names a Python interpreter (``python``, ``.venv/bin/python3.11``)."""
    return bool(_PYTHON.fullmatch(os.path.basename(word)))


def _find(words: list[str], env: dict[str, str], cwd: Path, depth: int) -> Interpreter | None:
    words = _skip_assignments(words)
    if not words or depth > _MAX_DEPTH:
        return None
    first = os.path.basename(words[0])
    if first in _SHELLS:
        return _from_shell(words, env, cwd, depth)
    runner = _from_runner(words, env, cwd)
    if runner is not None:
        return runner
    for i, word in enumerate(words):
        if is_python(word):
            path = _resolve(word, env, cwd)
            if path is not None:
                how = "the command" if i == 0 else f"the command (after {words[0]})"
                return Interpreter(path, how)
    program = _resolve(words[0], env, cwd)
    if program is not None:
        found = _from_shebang(program, env, cwd)
        if found is not None:
            return Interpreter(found, f"the shebang of {program}")
        if _is_shell_script(program):
            return _from_script(Path(program), env, cwd, depth)
    return None


def _skip_assignments(words: list[str]) -> list[str]:
    """Drop ``env``, ``exec`` and leading ``NAME=value`` words (``env A=1 python x.py``)."""
    out = list(words)
    while out and (out[0] in ("env", "exec", "command") or _ASSIGNMENT.match(out[0])):
        out.pop(0)
        while out and out[0].startswith("-") and out[0] != "-":  # env's own options
            out.pop(0)
    return out


def _from_shell(words: list[str], env: dict[str, str], cwd: Path, depth: int) -> Interpreter | None:
    args = words[1:]
    for i, arg in enumerate(args):
        if arg == "-c" or (arg.startswith("-") and "c" in arg[1:] and not arg.startswith("--")):
            if i + 1 < len(args):
                found = _from_text(args[i + 1], env, cwd, depth)
                if found is not None:
                    return Interpreter(found.path, f"{words[0]} -c: {found.how}")
            return None
        if not arg.startswith("-"):
            script = Path(arg) if os.path.isabs(arg) else cwd / arg
            return _from_script(script, env, cwd, depth) if script.is_file() else None
    return None


def _from_script(script: Path, env: dict[str, str], cwd: Path, depth: int) -> Interpreter | None:
    try:
        with open(script, "rb") as f:
            text = f.read(_MAX_SCRIPT_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    found = _from_text(text, env, cwd, depth)
    if found is None:
        return None
    return Interpreter(found.path, f"the shell script {script}: {found.how}")


def _from_text(text: str, env: dict[str, str], cwd: Path, depth: int) -> Interpreter | None:
    """The first command line of a shell text that runs Python."""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            words = list(lexer)
        except ValueError:
            continue
        command: list[str] = []
        for word in [*words, ";"]:
            if word not in _SEPARATORS:
                command.append(word)
                continue
            if command and command[0] != "cd":
                found = _find(command, env, cwd, depth + 1)
                if found is not None:
                    return found
            command = []
    return None


def _from_runner(words: list[str], env: dict[str, str], cwd: Path) -> Interpreter | None:
    """``uv run``, ``poetry run``, ``conda run``/``mamba run``: the environment they enter."""
    name = os.path.basename(words[0])
    if len(words) < 2 or words[1] != "run" or name not in ("uv", "poetry", "conda", "mamba"):
        return None
    if name == "uv":
        prefix = env.get("UV_PROJECT_ENVIRONMENT")
        if prefix:
            base = Path(prefix) if os.path.isabs(prefix) else cwd / prefix
        else:
            root = _project_root(cwd)
            base = (root or cwd) / ".venv"
        return _in_prefix(base, f"uv run (the project environment {base})")
    if name == "poetry":
        return _poetry(cwd, env)
    return _conda(words[2:], env, name)


def _poetry(cwd: Path, env: dict[str, str]) -> Interpreter | None:
    root = _project_root(cwd)
    if root is not None and (root / ".venv").is_dir():
        return _in_prefix(root / ".venv", f"poetry run (the in-project environment {root}/.venv)")
    poetry = shutil.which("poetry", path=env.get("PATH"))
    if poetry is None:
        return None
    try:
        proc = subprocess.run(
            [poetry, "env", "info", "--executable"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = proc.stdout.strip()
    if proc.returncode == 0 and path and os.path.exists(path):
        return Interpreter(path, "poetry run (poetry env info --executable)")
    return None


def _conda(args: list[str], env: dict[str, str], tool: str) -> Interpreter | None:
    prefix: str | None = None
    for i, arg in enumerate(args[:-1]):
        if arg in ("-p", "--prefix"):
            prefix = args[i + 1]
        elif arg in ("-n", "--name"):
            prefix = _conda_env(args[i + 1], env)
    for arg in args:
        if arg.startswith("--prefix="):
            prefix = arg.split("=", 1)[1]
        elif arg.startswith("--name="):
            prefix = _conda_env(arg.split("=", 1)[1], env)
    if prefix is None:
        prefix = env.get("CONDA_PREFIX")
    if not prefix:
        return None
    return _in_prefix(Path(prefix), f"{tool} run (the environment {prefix})")


def _conda_env(name: str, env: dict[str, str]) -> str | None:
    exe = env.get("CONDA_EXE") or env.get("MAMBA_EXE")
    bases = [Path(exe).resolve().parent.parent] if exe else []
    root = env.get("MAMBA_ROOT_PREFIX") or env.get("CONDA_ROOT")
    if root:
        bases.append(Path(root))
    for base in bases:
        if name == "base":
            return str(base)
        candidate = base / "envs" / name
        if candidate.is_dir():
            return str(candidate)
    return None


def _project_root(cwd: Path) -> Path | None:
    for folder in (cwd, *cwd.parents):
        if (folder / "pyproject.toml").is_file() or (folder / "uv.lock").is_file():
            return folder
    return None


def _in_prefix(prefix: Path, how: str) -> Interpreter | None:
    for name in ("bin/python", "bin/python3", "python.exe"):
        candidate = prefix / name
        if candidate.exists():
            return Interpreter(os.path.abspath(candidate), how)
    return None


def _resolve(word: str, env: Mapping[str, str], cwd: Path) -> str | None:
    if os.sep in word:
        path = Path(word) if os.path.isabs(word) else cwd / word
        return os.path.abspath(path) if path.exists() else None
    found = shutil.which(word, path=env.get("PATH"))
    return os.path.abspath(found) if found else None


def _from_shebang(program: str, env: Mapping[str, str], cwd: Path) -> str | None:
    """The Python interpreter named by ``program``'s ``#!`` line, if it names one."""
    try:
        with open(program, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()
    words = line.split()
    if words and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    if words and is_python(words[0]):
        return _resolve(words[0], env, cwd)
    if words and os.path.basename(words[0]) in _SHELLS:
        # pip's console scripts on long paths: '#!/bin/sh' then "'''exec' /path/python ..."
        text = head.decode("utf-8", errors="replace")
        m = re.search(r"exec'?\s+'?(\S*python[\d.]*)'?\s", text)
        if m:
            return _resolve(m.group(1), env, cwd)
    return None


def _is_shell_script(program: str) -> bool:
    if program.endswith(".sh"):
        return True
    try:
        with open(program, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    first = head.split(b"\n", 1)[0]
    return first.startswith(b"#!") and any(s.encode() in first for s in _SHELLS)
