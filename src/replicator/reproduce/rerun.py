"""Re-running a recorded command: the new run through :func:`replicator.record.launch.launch`.

The recorded command, config file, overrides, seed, deterministic flag, metric pattern and
variables are moved onto the checkout (paths under the original repository) and the fresh
environment (the interpreter, ``PATH``, ``VIRTUAL_ENV``), and the new run is linked to the
original with ``reproduction_of`` in its ``run.json``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from .._protocol import CHILD_VARIABLES, REPLICATOR_CONFIG
from ..capture.interpreter import is_python
from ..errors import ReproduceError
from ..store import Store, read_part
from .checkout import Checkout

__all__ = ["current_python", "rerun", "restored_variables"]

# Set by launch() itself for every run (the protocol's child variables); the recorded values
# belong to the original run.
_LAUNCH_SETS = frozenset(variable.name for variable in CHILD_VARIABLES)


def _interpreter_of(command: Sequence[str]) -> bool:
    return bool(command) and is_python(command[0])


def _map_command(
    command: Sequence[str],
    *,
    checkout: Checkout,
    python: Path | None,
    recorded_prefix: str | None,
) -> list[str]:
    """The recorded command with its interpreter and repository paths moved to the copies."""
    out = list(command)
    if python is not None and out:
        first = out[0]
        if _interpreter_of(out):
            out[0] = str(python)
        elif recorded_prefix and first.startswith(os.path.join(recorded_prefix, "bin") + os.sep):
            out[0] = str(python.parent / os.path.basename(first))
    recorded_bin = os.path.join(recorded_prefix, "bin") + os.sep if recorded_prefix else None
    for i, arg in enumerate(out):
        if os.path.isabs(arg) and checkout.contains(arg):
            out[i] = str(checkout.path_for(arg))
        elif python is not None and recorded_bin and i > 0 and recorded_bin in arg:
            # a wrapper's string (`sh -c '/venv/bin/python train.py'`) names the interpreter
            out[i] = arg.replace(recorded_bin, str(python.parent) + os.sep)
    return out


def restored_variables(
    meta: Mapping[str, Any], environment: Mapping[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """(variables to set again, names of secret ones that cannot be) for a re-run of a run.

    The run's variables that can change what it does (see
    :func:`replicator.capture.environment.run_variables`), from its ``environment.json`` (older
    runs: ``relevant_env``) and the launcher's ``child_env``; the ones ``launch`` sets for every
    run are left to it.
    """
    from ..capture.environment import recorded_variables
    from ..redact import REDACTED

    sources = [recorded_variables(environment), meta.get("child_env") or {}]
    env: dict[str, str] = {}
    secret: set[str] = set()
    for source in sources:
        for key, value in source.items():
            if key in _LAUNCH_SETS or key in ("VIRTUAL_ENV", "PATH"):
                continue
            if REDACTED in str(value) or "***" in str(value):
                secret.add(key)
                continue
            env[key] = str(value)
    return env, sorted(secret - set(env))


def _child_env(env: Mapping[str, str], checkout: Checkout) -> dict[str, str]:
    """``env`` with paths under the original repository moved into the checkout."""

    def moved(value: str) -> str:
        if os.pathsep not in value and not os.path.isabs(value):
            return value
        return os.pathsep.join(
            str(checkout.path_for(p)) if p and os.path.isabs(p) and checkout.contains(p) else p
            for p in value.split(os.pathsep)
        )

    return {key: moved(value) for key, value in env.items()}


def _config_path(meta: Mapping[str, Any], checkout: Checkout, run_dir: Path) -> str | None:
    """The config file given with ``-c``, moved into the checkout (else the stored copy)."""
    given = REPLICATOR_CONFIG.get(meta.get("child_env") or {})
    if given is None:
        return None
    moved = checkout.path_for(given)
    if moved.is_file():
        return str(moved)
    copy = run_dir / "config" / "raw" / given.name
    if copy.is_file():
        return str(copy)
    raise ReproduceError(
        "run", f"the run's config file {given} is neither in the snapshot nor stored."
    )


def current_python(
    meta: Mapping[str, Any], environment: Mapping[str, Any], warnings: list[str]
) -> Path:
    command = list(meta.get("command") or [])
    recorded = (environment.get("python") or {}).get("executable")
    if _interpreter_of(command) and os.path.isabs(command[0]) and os.path.exists(command[0]):
        return Path(command[0])
    if recorded and os.path.exists(str(recorded)):
        return Path(str(recorded))
    warnings.append(
        f"environment: the recorded interpreter {recorded} is gone; using {sys.executable}"
    )
    return Path(sys.executable)


def rerun(
    meta: Mapping[str, Any],
    original_id: str,
    environment: Mapping[str, Any],
    checkout: Checkout,
    run_dir: Path,
    *,
    python: Path | None,
    fresh_prefix: Path | None,
    store: Store,
    stdout: IO[bytes] | None,
    stderr: IO[bytes] | None,
) -> Any:
    from ..record.launch import RunSpec, launch
    from ..redact import REDACTED

    command = list(meta.get("command") or [])
    if not command:
        raise ReproduceError("run", f"run {original_id} recorded no command.")
    if any(REDACTED in part for part in command):
        raise ReproduceError(
            "run",
            f"run {original_id}'s command held a secret and was redacted when it was recorded.",
            hint="Re-run it by hand with `replicator run`.",
        )
    recorded_prefix = (environment.get("python") or {}).get("prefix")
    mapped = _map_command(
        command, checkout=checkout, python=python, recorded_prefix=recorded_prefix
    )
    code = read_part(run_dir, "code.json")
    cwd = (
        checkout.root / str(code["relative_cwd"])
        if code.get("relative_cwd") not in (None, "")
        else checkout.path_for(str(meta.get("cwd") or checkout.repo))
    )
    restored, secret = restored_variables(meta, environment)
    extra_env = _child_env(restored, checkout)
    if fresh_prefix is not None:
        extra_env["VIRTUAL_ENV"] = str(fresh_prefix)
        extra_env["PATH"] = f"{fresh_prefix / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        extra_env.setdefault("PYTHONPATH", "")
    outputs = read_part(run_dir, "outputs.json")
    declared = outputs.get("declared") if outputs.get("mode") == "declared" else None
    spec = RunSpec(
        command=tuple(mapped),
        config_path=_config_path(meta, checkout, run_dir),
        overrides=tuple(meta.get("overrides") or ()),
        seed=int(meta["seed"]),
        experiment=str(meta.get("experiment") or "default"),
        outputs=tuple(declared or ()),
        metric_pattern=meta.get("metric_pattern"),
        deterministic=bool(meta.get("deterministic")),
        env=extra_env,
        cwd=str(cwd),
        # in run.json from the start, so that even a crashed reproduction links back
        record={
            "reproduction_of": original_id,
            "restored_env": sorted(restored),
            **({"secret_env_not_restored": secret} if secret else {}),
        },
        # a run recorded before command placeholders existed ran its command as written
        literal_command="command_run" not in meta,
    )
    results = launch(
        spec,
        store=store,
        stdout=stdout or sys.stdout.buffer,
        stderr=stderr or sys.stderr.buffer,
    )
    return results[0]
