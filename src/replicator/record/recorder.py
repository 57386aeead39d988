"""Writing a run record: one set of functions shared by ``replicator run`` and ``replicator.start``.

Both ways of starting a run record the same things through these functions: the run directory
and ``run.json``, the status history, the config files, and the code, environment and hardware
capture. See :mod:`replicator.store` for the layout.
"""

from __future__ import annotations

import getpass
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._util.io import append_lines, atomic_write, atomic_write_json
from .._version import __version__
from ..capture.git import SNAPSHOT_MAX_FILE_SIZE
from ..capture.interpreter import Interpreter
from ..config import config_hash, dump_yaml, hparams_csv
from ..errors import ConfigError
from ..redact import (
    REDACTED,
    is_secret_name,
    redact_argv,
    redact_config,
    redact_text,
    secret_values,
)
from ..store import SCHEMA_VERSION, Store, process_identity

__all__ = [
    "capture_all",
    "fingerprint_config_data",
    "new_run",
    "record_config",
    "recordable_config",
    "resume_run",
    "set_status",
    "touch_heartbeat",
]


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def new_run(
    store: Store,
    *,
    experiment: str,
    name: str | None,
    seed: int,
    command: Sequence[str],
    cwd: str | os.PathLike[str],
    launcher: str,
    deterministic: bool = False,
    seeding: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[str, Path, dict[str, Any]]:
    """Create the run directory and its first ``run.json`` with status 'running'."""
    now = time.time()
    run_id, run_dir = store.create_run_dir(now=now)
    ignore = store.root / ".gitignore"
    if not ignore.exists():
        # The store must never end up in a code snapshot or a commit.
        atomic_write(ignore, "# replicator's local store: not source code\n*\n", fsync=False)
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "replicator_version": __version__,  # readers tell which known defects apply
        "id": run_id,
        "experiment": experiment,
        "name": name,
        "status": "running",
        "created": now,
        "started": now,
        "ended": None,
        "exit_code": None,
        "seed": seed,
        "seeding": dict(seeding or {}),
        "deterministic": deterministic,
        "command": redact_argv(list(command)),
        "cwd": str(Path(cwd).resolve()),
        "user": _user(),
        "launcher": launcher,
        "python_hash_seed": _hash_seed_state(launcher),
        **process_identity(),
        "config": {},
        "config_hash": None,
    }
    if extra:
        meta.update(extra)
    # No fsync here: start() must be quick, and the final status write is fsync'ed.
    atomic_write_json(run_dir / "run.json", meta, fsync=False)
    append_lines(run_dir / "status.jsonl", [_status_line("running", now)])
    touch_heartbeat(run_dir)
    return run_id, run_dir, meta


def resume_run(
    run_dir: Path, *, resume_completed: bool = False, stale_after: float | None = None
) -> tuple[str, dict[str, Any], int]:
    """Reopen a finished, failed, interrupted or crashed run for a resumed session.

    Returns ``(run_id, meta, session)``; the status history keeps every earlier status and the
    run is 'running' again under this process. A run whose recorder still lives is refused;
    ``stale_after`` is the store's crash threshold (:attr:`Store.heartbeat_stale_s`).
    """
    from .._util.io import read_json
    from ..errors import UsageError
    from ..store import read_run

    record = read_run(run_dir, stale_after=stale_after)
    if record.status == "running":
        raise UsageError(
            f"Run {record.id} is still running (pid {record.meta.get('pid')} on "
            f"{record.meta.get('host')}); stop it before resuming."
        )
    if record.status == "completed" and not resume_completed:
        raise UsageError(
            f"Run {record.id} completed; resuming it would rewrite a finished record. Start a new "
            "run, or continue this one on purpose with --resume-completed "
            "(start(..., resume_completed=True) in Python)."
        )
    meta = read_json(run_dir / "run.json")
    previous = record.status
    now = time.time()
    resumes = meta.setdefault("resumes", [])
    session = len(resumes) + 1
    resumes.append(
        {"session": session, "time": now, "previous_status": previous, **process_identity()}
    )
    meta.update(process_identity())
    meta.update(status="running", ended=None, exit_code=None, error=None)
    meta.pop("duration_s", None)
    if previous == "crashed":
        # The crash was only derived by readers; write it into the history now.
        append_lines(run_dir / "status.jsonl", [_status_line("crashed", record.ended or now)])
    atomic_write_json(run_dir / "run.json", meta)
    append_lines(
        run_dir / "status.jsonl", [_status_line("running", now, resumed=session)], fsync=True
    )
    touch_heartbeat(run_dir)
    return record.id, meta, session


def _hash_seed_state(launcher: str) -> str:
    """How str hashing is seeded in the process that runs the user's code."""
    if launcher == "cli":
        return "fixed (PYTHONHASHSEED = the run's seed, set before the child started)"
    from .seeding import hash_seed_fixed, startup_hash_seed

    if hash_seed_fixed():
        return f"fixed (PYTHONHASHSEED={startup_hash_seed()} at interpreter start)"
    return "random (PYTHONHASHSEED was not set when Python started)"


def _status_line(status: str, when: float, **fields: Any) -> str:
    import json

    return json.dumps({"status": status, "time": round(when, 6), **fields}, default=str)


def set_status(run_dir: Path, meta: dict[str, Any], status: str, **fields: Any) -> None:
    """Change the run's status: rewrite run.json atomically and append to status.jsonl."""
    now = time.time()
    meta["status"] = status
    meta.update(fields)
    if status != "running":
        meta["ended"] = now
        if meta.get("started"):
            meta["duration_s"] = round(now - float(meta["started"]), 3)
    atomic_write_json(run_dir / "run.json", meta)
    extra = {k: v for k, v in fields.items() if k in ("exit_code", "signal", "error")}
    append_lines(run_dir / "status.jsonl", [_status_line(status, now, **extra)], fsync=True)


def touch_heartbeat(run_dir: Path) -> None:
    path = run_dir / "heartbeat"
    try:
        os.utime(path)
    except FileNotFoundError:
        path.write_text(
            "replicator heartbeat: the mtime of this file tells that the recorder lives\n"
        )


def record_config(
    run_dir: Path,
    data: Mapping[str, Any],
    *,
    files: Sequence[str | os.PathLike[str]] = (),
    overrides: Sequence[str] = (),
    secrets: Iterable[str] | None = None,
) -> str:
    """Write config.yaml, hparams.csv and config/ (raw files, overrides); return the config hash.

    What is written is :func:`recordable_config` of ``data``: credential-named keys, known key
    formats and the values of credential variables (``secrets``, default: those of this
    process's environment, which ``${oc.env:...}`` may have pulled in) are redacted. The hash is
    the hash of that redacted config: a reproduction, which sees only the record, gets the same
    hash, and a hash on disk tells nothing about a secret.
    """
    known = secret_values(os.environ) if secrets is None else frozenset(secrets)
    clean = redact_config(data, secrets=known)
    folder = run_dir / "config"
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    removed = _removed_values(data, clean) | known
    names: list[dict[str, str]] = []
    for src in files:
        path = Path(src)
        target = raw / path.name
        if target.exists() and target.read_bytes() != path.read_bytes():
            target = raw / f"{len(names)}-{path.name}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        atomic_write(target, _redact_raw(text, removed), fsync=False)
        names.append({"source": str(path), "copy": str(target.relative_to(run_dir))})
    digest = config_hash(clean)
    atomic_write_json(
        folder / "sources.json",
        {"files": names, "overrides": redact_argv(list(overrides)), "config_hash": digest},
    )
    atomic_write(run_dir / "config.yaml", dump_yaml(clean))
    atomic_write(run_dir / "hparams.csv", hparams_csv(clean))
    return digest


def recordable_config(
    data: Mapping[str, Any], *, secrets: Iterable[str] | None = None
) -> dict[str, Any]:
    """``data`` as a run records it (run.json, config/script.json): secrets redacted, as
    :func:`record_config` writes it."""
    known = secret_values(os.environ) if secrets is None else frozenset(secrets)
    return redact_config(data, secrets=known)


def _removed_values(data: Any, clean: Any) -> set[str]:
    """The string values redaction removed (to remove them from the raw copies too)."""
    if isinstance(data, Mapping) and isinstance(clean, Mapping):
        out: set[str] = set()
        for (_, a), (_, b) in zip(data.items(), clean.items(), strict=False):
            out |= _removed_values(a, b)
        return out
    if isinstance(data, (list, tuple)) and isinstance(clean, list):
        return set().union(*(_removed_values(a, b) for a, b in zip(data, clean, strict=False)))
    if data != clean and isinstance(data, (str, int)) and not isinstance(data, bool):
        return {str(data)}
    return set()


_KEY_LINE = re.compile(
    r"^(?P<head>\s*-?\s*['\"]?(?P<key>[\w.\-]+)['\"]?\s*[:=]\s*)(?P<value>\S.*)$"
)


def _redact_raw(text: str, removed: Iterable[str]) -> str:
    """A raw config file's text with the values redaction removed, and values of credential-
    named keys (``password: x`` even when an override replaced it), redacted."""
    lines = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        m = _KEY_LINE.match(body)
        value = m["value"].strip() if m else ""
        if (
            m
            and is_secret_name(m["key"])
            and value not in ("|", ">", "|-", ">-")
            and "${" not in value
        ):
            line = m["head"] + REDACTED + line[len(body) :]
        lines.append(line)
    out = "".join(lines)
    for value in sorted(removed, key=len, reverse=True):
        if len(value) >= 6 and value in out:
            out = out.replace(value, REDACTED)
    return redact_text(out)


def capture_all(
    run_dir: Path,
    *,
    run_id: str,
    cwd: str | os.PathLike[str],
    store: Store,
    interpreter: Interpreter | None = None,
    env: Mapping[str, str] | None = None,
    max_file_size: int | None = SNAPSHOT_MAX_FILE_SIZE,
) -> dict[str, Any]:
    """Code, environment and hardware capture into the run directory; returns a code summary.

    Capture problems never stop a run: each part that fails is recorded with its error.
    """
    from ..capture.environment import capture_environment
    from ..capture.git import capture_code
    from ..capture.hardware import capture_hardware

    errors: dict[str, str] = {}
    exclude: list[str] = []
    code = capture_code(
        cwd,
        run_id=run_id,
        patch_path=run_dir / "code.patch",
        exclude=exclude,
        max_file_size=max_file_size,
    )
    code_record = code.as_dict()
    atomic_write_json(run_dir / "code.json", code_record, fsync=False)
    if code.repo is None:
        try:
            os.unlink(run_dir / "code.patch")
        except FileNotFoundError:
            pass
    project_root = code.repo or str(store.project_root)
    try:
        environment = capture_environment(
            executable=interpreter.path if interpreter is not None else None,
            project_root=project_root,
            env=dict(env) if env is not None else None,
        )
        environment["python"]["found_by"] = (
            interpreter.how
            if interpreter is not None
            else "the script's own interpreter (it called replicator.start())"
        )
        # Dirty editable packages get a snapshot commit in their own repository, like the run's code.
        from ..capture.editable import snapshot_editable_packages

        try:
            environment["packages"] = snapshot_editable_packages(
                environment["packages"], run_id=run_id, project_repo=code.repo
            )
        except Exception as exc:
            errors["editable_packages"] = f"{type(exc).__name__}: {exc}"
        atomic_write_json(run_dir / "environment.json", environment, fsync=False)
    except Exception as exc:  # capture must never stop the run; the failure is recorded
        errors["environment"] = f"{type(exc).__name__}: {exc}"
    try:
        atomic_write_json(run_dir / "hardware.json", capture_hardware(), fsync=False)
    except Exception as exc:
        errors["hardware"] = f"{type(exc).__name__}: {exc}"
    summary = {
        k: code_record.get(k)
        for k in ("repo", "commit", "branch", "remote", "dirty", "snapshot", "snapshot_ref", "note")
    }
    if code_record.get("left_out"):
        summary["left_out"] = code_record["left_out"]
    if errors:
        summary["capture_errors"] = errors
    return summary


def which_python(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> Interpreter:
    """The Python interpreter a command runs (also behind ``sh -c``, scripts, ``uv run``,
    ``torchrun``), else replicator's own, saying so."""
    import sys

    from ..capture.interpreter import find_interpreter

    found = find_interpreter(command, env, cwd=cwd)
    if found is None:
        return Interpreter(
            sys.executable, "replicator's own interpreter (no Python found in the command)"
        )
    return found


def fingerprint_config_data(
    config: Mapping[str, Any], *, store: Store, base_dir: str, where: str | None
) -> dict[str, Any]:
    """Fingerprint the datasets of a config's ``data:`` section (name -> path or {path, algo})."""
    section = config.get("data")
    if section is None:
        return {}
    if not isinstance(section, Mapping) or not all(
        isinstance(v, str) or (isinstance(v, Mapping) and "path" in v) for v in section.values()
    ):
        raise ConfigError(
            f"The 'data' section of {where or 'the config'} must map dataset names to paths "
            "(train: data/train) or to {path: ..., algo: md5}; put other settings under another key."
        )
    from ..data import fingerprint_datasets

    return fingerprint_datasets(section, store=store, base_dir=base_dir)
