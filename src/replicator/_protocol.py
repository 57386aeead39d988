"""The contract between ``replicator run`` (the launcher) and the script it starts (the child).

The launcher opens the run, then starts the command with these variables in its environment;
:meth:`ChildContext.from_environ` reads them back in the child (``replicator.start()``,
``load_config`` and ``capture_args`` go through it; ``seed_worker``, which runs in DataLoader
workers, reads just ``REPLICATOR_SEED.get()``). Nothing else reads a variable of this table by
its name as a string:

=============================  =========  ========================================================
variable                       type       meaning (set by the launcher unless marked *user*)
=============================  =========  ========================================================
``REPLICATOR_RUN_DIR``         path       the run directory; when set, ``start()`` joins this run
``REPLICATOR_RUN_ID``          str        the run's id
``REPLICATOR_SEED``            int        the run's seed (``load_config`` puts it in ``seed``)
``REPLICATOR_CONFIG``          path       the ``-c FILE`` given to the launcher; it replaces the
                                          path the script passes to ``load_config``
``REPLICATOR_OVERRIDES``       JSON list  the ``--set`` overrides, applied after the script's own
``REPLICATOR_EXPERIMENT_GIVEN`` bool      ``--experiment`` was given: ``start(experiment=...)``
                                          in the script does not rename the run
``REPLICATOR_RESUME``          bool       the run is continued (``--resume``): ``run.resumed``
``REPLICATOR_DETERMINISTIC``   bool       ``--deterministic``: ``start()`` turns deterministic
                                          algorithms on
``PYTHONHASHSEED``             int        the seed again, read by the child's interpreter at start
``PYTHONUNBUFFERED``           bool       so that output reaches the terminal and the logs at once
``CUBLAS_WORKSPACE_CONFIG``    str        ``:4096:8`` with ``--deterministic`` (before CUDA starts)
``REPLICATOR_STORE``           path       *user*: the store to use, before ``replicator.yaml``
``REPLICATOR_SWEEP_JOB``       str        set by ``replicator sweep`` for a job's launcher:
                                          ``SWEEP_ID:INDEX``, recorded in run.json's seeding
``REPLICATOR_DEBUG``           bool       *user*: the CLI shows tracebacks of internal errors
``REPLICATOR_HEARTBEAT_STALE_S`` float    *user*: seconds without a heartbeat after which a
                                          run (or a resume lock) recorded on another host
                                          counts as crashed; before ``heartbeat_stale_s`` in
                                          ``replicator.yaml`` (default 120)
``REPLICATOR_RENDEZVOUS_TIMEOUT_S`` float *user*: seconds a rank above 0 of a bare torchrun
                                          waits for rank 0's run (default 120)
=============================  =========  ========================================================

Booleans are written ``1``/``0``; ``0``, ``false``, ``no``, ``off`` and the empty string read as
false, anything else as true. An empty variable counts as unset.

Besides the run's own files (``run.json``, ``metrics.jsonl``, ``summary.json``, ``seeding.json``,
described with the store), the child leaves two files for the launcher, which reads them when
the child has ended; what the script says there wins over what the launcher guessed:

``config/script.json`` (:class:`ScriptConfig`)
    ``{"config": {...}, "config_hash": "...", "data"?: {...}, "data_error"?: "..."}``: the config
    the script actually loaded (``load_config``/``capture_args``/``start(cfg)``), its hash and the
    fingerprints of datasets it declares that the launcher did not see.
``config/experiment.json``
    ``{"experiment": "name"}``: the experiment the script named with ``start(experiment=...)``,
    written only when the launcher was given none. The child also writes the name into
    ``run.json`` when it joins, so that a run that crashes is already filed under it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from ._util.io import atomic_write_json, read_json
from .errors import ConfigError, SeedingError, UsageError

__all__ = [
    "CHILD_VARIABLES",
    "CUBLAS_WORKSPACE_CONFIG",
    "DETERMINISM_ENV",
    "EXPERIMENT_FILE",
    "PYTHONHASHSEED",
    "PYTHONUNBUFFERED",
    "REPLICATOR_CONFIG",
    "REPLICATOR_DEBUG",
    "REPLICATOR_DETERMINISTIC",
    "REPLICATOR_EXPERIMENT_GIVEN",
    "REPLICATOR_HEARTBEAT_STALE_S",
    "REPLICATOR_OVERRIDES",
    "REPLICATOR_RENDEZVOUS_TIMEOUT_S",
    "REPLICATOR_RESUME",
    "REPLICATOR_RUN_DIR",
    "REPLICATOR_RUN_ID",
    "REPLICATOR_SEED",
    "REPLICATOR_STORE",
    "REPLICATOR_SWEEP_JOB",
    "SCRIPT_CONFIG_FILE",
    "ChildContext",
    "EnvironmentVariable",
    "ScriptConfig",
    "read_experiment",
    "read_script_config",
    "write_experiment",
    "write_script_config",
]

T = TypeVar("T")
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class EnvironmentVariable(Generic[T]):
    """One environment variable of the protocol: its name, how its text reads, its default."""

    name: str
    parse: Callable[[str], T] = field(repr=False)
    render: Callable[[T], str] = field(repr=False)
    default: T | None = None
    doc: str = ""

    def is_set(self, environ: Mapping[str, str] = os.environ) -> bool:
        """Whether the variable holds a value (an empty one counts as unset)."""
        return bool(environ.get(self.name))

    def get(self, environ: Mapping[str, str] = os.environ) -> T | None:
        """The parsed value, or the default when unset; bad text raises naming the variable."""
        text = environ.get(self.name)
        if not text:
            return self.default
        return self.parse(text)

    def to_environ(self, value: T) -> dict[str, str]:
        """``{name: text}`` for a child's environment."""
        return {self.name: self.render(value)}


def _text(text: str) -> str:
    return text


def _path(text: str) -> Path:
    return Path(text)


def _bool(text: str) -> bool:
    return text.strip().lower() not in _FALSE


def _bool_text(value: bool) -> str:
    return "1" if value else "0"


def _int_of(name: str, error: type[Exception]) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text.strip())
        except ValueError:
            raise error(f"${name} must be an integer, got {text!r}.") from None

    return parse


def _positive_seconds(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            value = math.nan
        if not (0 < value < math.inf):
            raise ConfigError(f"${name} must be a positive number of seconds, got {text!r}.")
        return value

    return parse


def _overrides(text: str) -> tuple[str, ...]:
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"$REPLICATOR_OVERRIDES is not a JSON list of overrides: {text!r}."
        ) from exc
    if not isinstance(values, list):
        raise ConfigError(f"$REPLICATOR_OVERRIDES is not a JSON list of overrides: {text!r}.")
    return tuple(str(v) for v in values)


def _overrides_text(values: tuple[str, ...]) -> str:
    return json.dumps(list(values))


REPLICATOR_RUN_DIR = EnvironmentVariable[Path](
    "REPLICATOR_RUN_DIR", _path, str, doc="The run directory the child records into."
)
REPLICATOR_RUN_ID = EnvironmentVariable[str]("REPLICATOR_RUN_ID", _text, str, doc="The run's id.")
REPLICATOR_SEED = EnvironmentVariable[int](
    "REPLICATOR_SEED",
    _int_of("REPLICATOR_SEED", SeedingError),
    str,
    doc="The run's seed; load_config puts it in the config's 'seed' key.",
)
REPLICATOR_CONFIG = EnvironmentVariable[Path](
    "REPLICATOR_CONFIG",
    _path,
    str,
    doc="The absolute path of `replicator run -c FILE`; it replaces the script's own path.",
)
REPLICATOR_OVERRIDES = EnvironmentVariable[tuple[str, ...]](
    "REPLICATOR_OVERRIDES",
    _overrides,
    _overrides_text,
    default=(),
    doc="The `--set` overrides as a JSON list, applied after the script's own overrides.",
)
REPLICATOR_EXPERIMENT_GIVEN = EnvironmentVariable[bool](
    "REPLICATOR_EXPERIMENT_GIVEN",
    _bool,
    _bool_text,
    default=False,
    doc="`--experiment` was given: the script's start(experiment=...) does not rename the run.",
)
REPLICATOR_RESUME = EnvironmentVariable[bool](
    "REPLICATOR_RESUME",
    _bool,
    _bool_text,
    default=False,
    doc="The run is continued (`replicator run --resume`): run.resumed is True.",
)
REPLICATOR_DETERMINISTIC = EnvironmentVariable[bool](
    "REPLICATOR_DETERMINISTIC",
    _bool,
    _bool_text,
    default=False,
    doc="`--deterministic`: start() turns deterministic algorithms on.",
)
PYTHONHASHSEED = EnvironmentVariable[int](
    "PYTHONHASHSEED",
    _int_of("PYTHONHASHSEED", UsageError),
    str,
    doc="The run's seed, read by the child's interpreter when it starts (str hashing).",
)
PYTHONUNBUFFERED = EnvironmentVariable[bool](
    "PYTHONUNBUFFERED",
    _bool,
    _bool_text,
    default=False,
    doc="Unbuffered output, so that the child's lines reach the terminal and the logs at once.",
)
CUBLAS_WORKSPACE_CONFIG = EnvironmentVariable[str](
    "CUBLAS_WORKSPACE_CONFIG",
    _text,
    str,
    doc="Set to ':4096:8' with --deterministic, before CUDA can start (deterministic cuBLAS).",
)
REPLICATOR_RENDEZVOUS_TIMEOUT_S = EnvironmentVariable[float](
    "REPLICATOR_RENDEZVOUS_TIMEOUT_S",
    _positive_seconds("REPLICATOR_RENDEZVOUS_TIMEOUT_S"),
    repr,
    default=120.0,
    doc="Set by the user: seconds a rank above 0 of a bare torchrun waits for rank 0 to open "
    "the launch's run before it gives up with an error.",
)
REPLICATOR_STORE = EnvironmentVariable[Path](
    "REPLICATOR_STORE",
    _path,
    str,
    doc="Set by the user: the store to use, before replicator.yaml and ./.replicator.",
)
REPLICATOR_DEBUG = EnvironmentVariable[bool](
    "REPLICATOR_DEBUG",
    _bool,
    _bool_text,
    default=False,
    doc="Set by the user: the CLI re-raises internal errors with their traceback.",
)
REPLICATOR_HEARTBEAT_STALE_S = EnvironmentVariable[float](
    "REPLICATOR_HEARTBEAT_STALE_S",
    _positive_seconds("REPLICATOR_HEARTBEAT_STALE_S"),
    repr,
    default=120.0,
    doc="Set by the user: a 'running' run (or a resume lock) recorded on another host whose "
    "heartbeat (touched every 10 s) is older than this many seconds counts as crashed. It wins "
    "over heartbeat_stale_s in replicator.yaml. Lower it on a cluster for faster crash "
    "detection; keep it well above 10 s and the filesystem's clock skew.",
)


def _sweep_job(text: str) -> tuple[str, int]:
    sweep_id, sep, index = text.strip().rpartition(":")
    if not sep or not sweep_id or not index.isdigit():
        raise UsageError(f"$REPLICATOR_SWEEP_JOB must be SWEEP_ID:INDEX, got {text!r}.")
    return sweep_id, int(index)


def _sweep_job_text(value: tuple[str, int]) -> str:
    return f"{value[0]}:{value[1]}"


REPLICATOR_SWEEP_JOB = EnvironmentVariable[tuple[str, int]](
    "REPLICATOR_SWEEP_JOB",
    _sweep_job,
    _sweep_job_text,
    doc="Set by `replicator sweep` for each job's `replicator run`: SWEEP_ID:INDEX, recorded in "
    "run.json's seeding as {'sweep': id, 'index': i}.",
)

# What `replicator run --deterministic` adds to the child's environment.
DETERMINISM_ENV: Mapping[str, str] = {CUBLAS_WORKSPACE_CONFIG.name: ":4096:8"}

# Every variable the launcher may set for its child: a recorded value of one of these belongs
# to the run it was recorded for, never to a new run started from that record.
CHILD_VARIABLES: tuple[EnvironmentVariable[Any], ...] = (
    REPLICATOR_RUN_DIR,
    REPLICATOR_RUN_ID,
    REPLICATOR_SEED,
    REPLICATOR_CONFIG,
    REPLICATOR_OVERRIDES,
    REPLICATOR_EXPERIMENT_GIVEN,
    REPLICATOR_RESUME,
    REPLICATOR_DETERMINISTIC,
    PYTHONHASHSEED,
    PYTHONUNBUFFERED,
    REPLICATOR_SWEEP_JOB,
)


@dataclass(frozen=True)
class ChildContext:
    """What a script started by ``replicator run`` learns from its environment.

    The launcher builds one and passes :meth:`to_environ` to the child; the child reads it back
    with :meth:`from_environ`. ``run_id`` and ``seed`` may be missing when something other than
    the launcher set ``REPLICATOR_RUN_DIR`` (a notebook kernel, a user): the child then reads
    them from the run's ``run.json``.
    """

    run_dir: Path
    run_id: str | None = None
    seed: int | None = None
    config_path: Path | None = None
    overrides: tuple[str, ...] = ()
    experiment_given: bool = False
    resume: bool = False
    deterministic: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> ChildContext | None:
        """The context of this process, or None when no launcher started it."""
        run_dir = REPLICATOR_RUN_DIR.get(environ)
        if run_dir is None:
            return None
        return cls(
            run_dir=run_dir,
            run_id=REPLICATOR_RUN_ID.get(environ),
            seed=REPLICATOR_SEED.get(environ),
            config_path=REPLICATOR_CONFIG.get(environ),
            overrides=REPLICATOR_OVERRIDES.get(environ) or (),
            experiment_given=bool(REPLICATOR_EXPERIMENT_GIVEN.get(environ)),
            resume=bool(REPLICATOR_RESUME.get(environ)),
            deterministic=bool(REPLICATOR_DETERMINISTIC.get(environ)),
        )

    def to_environ(self) -> dict[str, str]:
        """The variables the launcher adds to the child's environment (the inverse)."""
        env = {
            **REPLICATOR_RUN_DIR.to_environ(self.run_dir),
            **REPLICATOR_OVERRIDES.to_environ(self.overrides),
            **REPLICATOR_EXPERIMENT_GIVEN.to_environ(self.experiment_given),
            **PYTHONUNBUFFERED.to_environ(True),
        }
        if self.run_id is not None:
            env.update(REPLICATOR_RUN_ID.to_environ(self.run_id))
        if self.seed is not None:
            env.update(REPLICATOR_SEED.to_environ(self.seed))
            env.update(PYTHONHASHSEED.to_environ(self.seed))
        if self.config_path is not None:
            env.update(REPLICATOR_CONFIG.to_environ(self.config_path))
        if self.resume:
            env.update(REPLICATOR_RESUME.to_environ(True))
        if self.deterministic:
            env.update(REPLICATOR_DETERMINISTIC.to_environ(True))
            env.update(DETERMINISM_ENV)
        return env


# ----------------------------------------------------------------- files the child leaves
SCRIPT_CONFIG_FILE = "config/script.json"
EXPERIMENT_FILE = "config/experiment.json"


@dataclass(frozen=True)
class ScriptConfig:
    """``config/script.json``: the config the script loaded, its hash, its datasets."""

    config: dict[str, Any]
    config_hash: str
    data: dict[str, Any] | None = None
    data_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON object written to ``config/script.json`` (optional keys only when set)."""
        out: dict[str, Any] = {"config": self.config, "config_hash": self.config_hash}
        if self.data is not None:
            out["data"] = self.data
        if self.data_error is not None:
            out["data_error"] = self.data_error
        return out


def write_script_config(run_dir: str | os.PathLike[str], record: ScriptConfig) -> Path:
    """Write ``config/script.json`` in ``run_dir`` (by the child)."""
    return _write(Path(run_dir) / SCRIPT_CONFIG_FILE, record.as_dict())


def read_script_config(run_dir: str | os.PathLike[str]) -> ScriptConfig | None:
    """``config/script.json`` of ``run_dir``, or None when missing or unreadable."""
    try:
        raw = read_json(Path(run_dir) / SCRIPT_CONFIG_FILE)
        return ScriptConfig(
            config=raw["config"],
            config_hash=raw["config_hash"],
            data=raw.get("data"),
            data_error=raw.get("data_error"),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_experiment(run_dir: str | os.PathLike[str], experiment: str) -> Path:
    """Write ``config/experiment.json`` in ``run_dir`` (by the child)."""
    return _write(Path(run_dir) / EXPERIMENT_FILE, {"experiment": experiment})


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # no fsync: the launcher reads these once the child has ended, before the run is final
    return atomic_write_json(path, data, fsync=False)


def read_experiment(run_dir: str | os.PathLike[str]) -> str | None:
    """The experiment named in ``config/experiment.json``, or None."""
    try:
        return str(read_json(Path(run_dir) / EXPERIMENT_FILE)["experiment"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
