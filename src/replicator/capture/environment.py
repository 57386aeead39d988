"""Environment capture: Python, OS, packages with their origins, lock files, relevant variables.

Packages are read from ``*.dist-info`` directories on the interpreter's ``sys.path`` (no pip, no
``importlib.metadata`` walk): name and version from the directory name, and only where needed the
PEP 610 ``direct_url.json`` (editable, VCS, local archive) and ``INSTALLER``. An editable
package gets its own repository's commit and dirty flag. torch's build (``+cu130``, ``+cpu``) is
read from ``torch/version.py`` as text; torch is never imported.

The interpreter may be another one than replicator's own (``replicator run -- .venv/bin/python``):
its ``sys.path`` and version are then asked from it once.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..redact import redact_env, redact_url

__all__ = [
    "LOCK_FILES",
    "RELEVANT_ENV",
    "THREAD_ENV",
    "TOOLING",
    "capture_environment",
    "interpreter_facts",
    "is_library_variable",
    "normalise_name",
    "recorded_variables",
    "run_variables",
    "scan_packages",
]

# Installers, not dependencies: a uv-made venv has no pip, a pip-made one has no uv.
TOOLING = frozenset({"pip", "uv", "setuptools", "wheel", "distribute", "pkg-resources"})

LOCK_FILES = (
    "uv.lock",
    "poetry.lock",
    "pylock.toml",
    "Pipfile.lock",
    "environment.yml",
    "environment.yaml",
    "conda-lock.yml",
    "pyproject.toml",
)
LOCK_GLOBS = ("requirements*.txt", "pylock.*.toml")
# Variables that set the thread count (or kernel choice) of a BLAS or OpenMP runtime.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
# Variables that change numbers or threads; shown first and compared by `diff`.
RELEVANT_ENV = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_LAUNCH_BLOCKING",
    *THREAD_ENV,
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "XLA_FLAGS",
    "JAX_ENABLE_X64",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "MKL_CBWR",
    "KMP_DETERMINISTIC_REDUCTION",
)
# Prefixes of variables that change what numeric and ML libraries do (threads, kernels, TF32,
# loading rules such as TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, caches and offline switches).
BEHAVIOUR_PREFIXES = (
    "PYTHON",
    "TORCH_",
    "PYTORCH_",
    "TF_",
    "XLA_",
    "JAX_",
    "CUDA_",
    "CUBLAS_",
    "CUDNN_",
    "NCCL_",
    "NVIDIA_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "KMP_",
    "NUMEXPR_",
    "HF_",
    "TRANSFORMERS_",
    "TOKENIZERS_",
)
# Variables a login shell, a terminal, a remote session, a scheduler or CI sets: they describe
# the session, not the run, and are neither restored by `reproduce` nor compared.
SESSION_ENV = frozenset(
    {
        "HOME", "PATH", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "PWD",
        "OLDPWD", "SHLVL", "HOSTNAME", "HOSTTYPE", "MACHTYPE", "OSTYPE", "MAIL", "_",
        "DISPLAY", "COLORTERM", "LS_COLORS", "LESS", "LESSOPEN", "LESSCLOSE", "PAGER",
        "EDITOR", "VISUAL", "MANPATH", "INFOPATH", "MOTD_SHOWN", "COLUMNS", "LINES", "PS1",
        "PS2", "PROMPT_COMMAND", "HISTFILE", "HISTSIZE", "HISTCONTROL", "TZ", "STY", "WINDOW",
        "VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT", "CI", "TMPDIR", "TEMP", "TMP", "WSLENV",
        "NO_COLOR", "FORCE_COLOR", "CLICOLOR", "JPY_PARENT_PID", "KERNEL_LAUNCH_TIMEOUT",
        "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR",
    }
)  # fmt: skip
SESSION_PREFIXES = (
    "LC_", "XDG_", "SSH_", "DBUS_", "GPG_", "TMUX", "TERM_", "VSCODE_", "CONDA_", "_CE_",
    "MAMBA_", "SLURM_", "PBS_", "SGE_", "LSB_", "GITHUB_", "RUNNER_", "GITLAB_", "BUILDKITE",
    "PYTEST_", "COV_", "REPLICATOR_", "SUDO_", "WT_", "ITERM", "KITTY", "ALACRITTY",
    "GNOME_", "KDE_", "DESKTOP_", "SESSION_", "WAYLAND_", "XAUTHORITY", "XMODIFIERS",
    "QT_", "GTK_", "GDM", "MPLBACKEND", "PIP_", "UV_", "POETRY_", "PYENV_SHELL",
)  # fmt: skip
_DIST_INFO = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+?)\.dist-info$")
_PROBE = (
    "import json, sys, sysconfig; print(json.dumps({'path': sys.path, 'version': sys.version, "
    "'version_info': list(sys.version_info[:3]), 'executable': sys.executable, "
    "'implementation': sys.implementation.name, 'prefix': sys.prefix, "
    "'base_prefix': sys.base_prefix}))"
)


def interpreter_facts(executable: str | None = None) -> dict[str, Any]:
    """sys.path, version and prefix of ``executable`` (default: this interpreter)."""
    if executable is None or _same_file(executable, sys.executable):
        return {
            "path": list(sys.path),
            "version": sys.version,
            "version_info": list(sys.version_info[:3]),
            "executable": sys.executable,
            "implementation": sys.implementation.name,
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "hash_randomization": bool(sys.flags.hash_randomization),
        }
    proc = subprocess.run(
        [executable, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        return {"executable": executable, "error": proc.stderr.strip()[-500:]}
    facts: dict[str, Any] = json.loads(proc.stdout)
    # -I drops the script dir and user site; the real child adds its script's dir, not packages.
    return facts


def _same_file(a: str, b: str) -> bool:
    # Not os.path.samefile: every venv's python is a symlink to the same base interpreter, but
    # each venv has its own site-packages. The path itself tells the environments apart.
    return os.path.abspath(a) == os.path.abspath(b)


def normalise_name(name: str) -> str:
    """A distribution's name as PEP 503 compares it (``Foo_Bar.baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def scan_packages(paths: list[str]) -> dict[str, dict[str, Any]]:
    """Installed distributions on ``paths``: name -> {version, origin, ...}; first one wins."""
    packages: dict[str, dict[str, Any]] = {}
    for entry in paths:
        if not entry or not os.path.isdir(entry):
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        for filename in names:
            if not filename.endswith(".dist-info"):
                continue
            m = _DIST_INFO.match(filename)
            if not m:
                continue
            key = normalise_name(m["name"])
            if key in packages:
                continue
            info_dir = os.path.join(entry, filename)
            record: dict[str, Any] = {"name": m["name"], "version": m["version"], "location": entry}
            record.update(_origin(info_dir))
            packages[key] = record
    return dict(sorted(packages.items()))


def _origin(info_dir: str) -> dict[str, Any]:
    out: dict[str, Any] = {"origin": "index"}
    try:
        with open(os.path.join(info_dir, "INSTALLER"), encoding="utf-8") as f:
            out["installer"] = f.read().strip()
    except OSError:
        pass
    try:
        with open(os.path.join(info_dir, "direct_url.json"), encoding="utf-8") as f:
            direct = json.load(f)
    except (OSError, ValueError):
        return out
    url = str(direct.get("url", ""))
    if "vcs_info" in direct:
        vcs = direct["vcs_info"]
        out.update(
            origin="vcs",
            url=redact_url(url),
            vcs=vcs.get("vcs"),
            commit=vcs.get("commit_id"),
            requested_revision=vcs.get("requested_revision"),
        )
    elif "dir_info" in direct:
        path = _file_url_path(url)
        editable = bool(direct["dir_info"].get("editable"))
        out.update(origin="editable" if editable else "local", url=redact_url(url), path=path)
        if editable and path:
            from .git import package_repo_state

            state = package_repo_state(path)
            if state:
                out["git"] = state
    elif "archive_info" in direct:
        archive = direct["archive_info"]
        out.update(
            origin="archive", url=redact_url(url), hash=archive.get("hash") or archive.get("hashes")
        )
        if url.startswith("file:"):
            out["origin"] = "local"
            out["path"] = _file_url_path(url)
    return out


def _file_url_path(url: str) -> str | None:
    if not url.startswith("file:"):
        return None
    return unquote(urlsplit(url).path)


def _torch_build(paths: list[str]) -> dict[str, Any] | None:
    """torch's version, CUDA and HIP build from ``torch/version.py``, read as text."""
    for entry in paths:
        candidate = os.path.join(entry, "torch", "version.py")
        try:
            with open(candidate, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        facts: dict[str, Any] = {"path": candidate}
        for key in ("__version__", "cuda", "hip", "git_version", "debug"):
            m = re.search(rf"^{key}\s*(?::\s*[^=]+)?=\s*(.+)$", text, re.M)
            if m:
                value = m.group(1).strip()
                facts[key.strip("_")] = (
                    value.strip("'\"")
                    if value not in ("None", "False", "True")
                    else {"None": None, "False": False, "True": True}[value]
                )
        return facts
    return None


def lock_files(root: str | os.PathLike[str] | None) -> dict[str, str]:
    """sha256 of dependency lock files present at ``root`` (relative path -> hex digest)."""
    if root is None:
        return {}
    base = Path(root)
    found: set[Path] = {base / name for name in LOCK_FILES if (base / name).is_file()}
    for pattern in LOCK_GLOBS:
        found.update(p for p in base.glob(pattern) if p.is_file())
    out = {}
    for path in sorted(found):
        try:
            out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue
    return out


def _os_facts() -> dict[str, Any]:
    uname = platform.uname()
    facts: dict[str, Any] = {
        "system": uname.system,
        "release": uname.release,
        "version": uname.version,
        "machine": uname.machine,
    }
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    facts["distribution"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    libc, libc_version = platform.libc_ver()
    if libc:
        facts["libc"] = f"{libc} {libc_version}"
    return facts


def capture_environment(
    *,
    executable: str | None = None,
    project_root: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Everything about the software environment of a run, secrets redacted."""
    facts = interpreter_facts(executable)
    paths = [p for p in facts.get("path", []) if p]
    environ = dict(os.environ if env is None else env)
    redacted = redact_env(environ)
    record: dict[str, Any] = {
        "python": {
            "version": facts.get("version"),
            "version_info": facts.get("version_info"),
            "implementation": facts.get("implementation"),
            "executable": facts.get("executable"),
            "prefix": facts.get("prefix"),
            "virtualenv": facts.get("prefix") != facts.get("base_prefix"),
        },
        "os": _os_facts(),
        "packages": scan_packages(paths),
        "torch": _torch_build(paths),
        "lock_files": lock_files(project_root),
        "relevant_env": {k: redacted[k] for k in RELEVANT_ENV if k in redacted},
        "env": dict(sorted(redacted.items())),
    }
    if "error" in facts:
        record["python"]["error"] = facts["error"]
    if "conda" in environ.get("CONDA_PREFIX", "") or environ.get("CONDA_DEFAULT_ENV"):
        record["conda"] = {
            "prefix": environ.get("CONDA_PREFIX"),
            "env": environ.get("CONDA_DEFAULT_ENV"),
        }
    return record


def run_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of an environment that can change what a run does.

    The known numeric and ML ones (threads, CUDA/cuBLAS, ``PYTHON*``, ``TORCH_*``, ``TF_*``,
    ``XLA_*``, ``JAX_*``, ``HF_*``, ...) and every other variable the user set beyond what a
    login shell, terminal, scheduler or CI session sets (:data:`SESSION_ENV`,
    :data:`SESSION_PREFIXES`). ``reproduce`` restores these and ``env diff``/``diff`` compare them.
    """
    return {
        key: value
        for key, value in sorted(env.items())
        if is_library_variable(key) or not (key in SESSION_ENV or key.startswith(SESSION_PREFIXES))
    }


def is_library_variable(name: str) -> bool:
    """Whether ``name`` is one of the variables numeric and ML libraries read (threads,
    CUDA/cuBLAS, ``PYTHON*``, ``TORCH_*``, ``TF_*``, ...), as opposed to one of the user's own."""
    return name in RELEVANT_ENV or name.startswith(BEHAVIOUR_PREFIXES)


def recorded_variables(environment: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`run_variables` of a recorded ``environment.json`` (its ``env``; a run recorded
    before that was kept: its ``relevant_env``)."""
    recorded = environment.get("env")
    if isinstance(recorded, Mapping):
        return run_variables(recorded)
    return dict(environment.get("relevant_env") or {})
