"""Seeding every framework a script uses, deterministic mode, seed drawing and worker seeding.

``seed_everything(seed)`` seeds Python's ``random``, numpy's global state (and returns a numpy
``Generator`` from a ``SeedSequence``), torch on the CPU and every CUDA device, TensorFlow and JAX
when the script has imported them. A framework that is not imported is not imported here: that
keeps ``import replicator`` cheap and never starts CUDA behind the user's back.

``PYTHONHASHSEED`` cannot be changed inside a running interpreter; ``replicator run`` sets it in
the child's environment before the interpreter starts. Elsewhere ``sys.flags.hash_randomization``
is recorded and a warning is given once.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, field
from typing import Any

from .._protocol import CUBLAS_WORKSPACE_CONFIG, DETERMINISM_ENV, PYTHONHASHSEED, REPLICATOR_SEED
from .._util.warnings import warn
from ..errors import SeedingError

__all__ = [
    "DETERMINISM_ENV",
    "SeedReport",
    "draw_seeds",
    "seed_everything",
    "seed_worker",
    "worker_seed",
]

MAX_SEED = 2**32 - 1
# DETERMINISM_ENV (from the protocol): set in the child's environment by
# `replicator run --deterministic` before CUDA can start.


@dataclass(frozen=True)
class SeedReport:
    """What :func:`seed_everything` did: the seed, the frameworks seeded and the flags it set."""

    seed: int
    seeded: tuple[str, ...]
    deterministic: bool
    flags: dict[str, Any] = field(default_factory=dict)
    hash_seed_fixed: bool = False
    generator: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "seeded": list(self.seeded),
            "deterministic": self.deterministic,
            "flags": self.flags,
            "hash_seed_fixed": self.hash_seed_fixed,
        }


def check_seed(seed: Any, *, where: str = "seed") -> int:
    """A seed must be an integer in [0, 2**32 - 1] (numpy's and PYTHONHASHSEED's range)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        try:
            if isinstance(seed, str) and seed.strip().lstrip("-").isdigit():
                seed = int(seed)
            elif hasattr(seed, "__index__"):
                seed = int(seed.__index__())
            else:
                raise TypeError
        except (TypeError, ValueError):
            raise SeedingError(f"{where} must be an integer, got {seed!r}.") from None
    if not 0 <= seed <= MAX_SEED:
        raise SeedingError(f"{where} must be between 0 and {MAX_SEED}, got {seed}.")
    return int(seed)


def draw_seeds(n: int, *, root: int | None = None) -> tuple[int, list[int]]:
    """Draw ``n`` independent seeds once from a recorded root (numpy ``SeedSequence.spawn``).

    Returns ``(root, seeds)``; with ``root=None`` fresh entropy is drawn and returned so that the
    same seeds can be drawn again.
    """
    import numpy as np

    if n < 1:
        raise SeedingError(f"The number of seeds must be at least 1, got {n}.")
    seq = np.random.SeedSequence(root)
    root_value = int(seq.entropy)  # type: ignore[arg-type]
    seeds = [int(child.generate_state(1, dtype=np.uint32)[0]) for child in seq.spawn(n)]
    return root_value, seeds


_hash_warned = False


def startup_hash_seed() -> str | None:
    """PYTHONHASHSEED as it was when this interpreter started (None if unset).

    ``sys.flags.hash_randomization`` is 0 only for PYTHONHASHSEED=0, and ``os.environ`` may have
    been changed by the script (which has no effect on hashing), so the process's initial
    environment is read from /proc where it exists.
    """
    prefix = f"{PYTHONHASHSEED.name}=".encode()
    try:
        with open("/proc/self/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(prefix):
                    return item[len(prefix) :].decode("ascii", "replace")
            return None
    except OSError:
        return os.environ.get(PYTHONHASHSEED.name)


def hash_seed_fixed() -> bool:
    """True when this interpreter's str hashing is fixed (PYTHONHASHSEED set before start)."""
    if not sys.flags.hash_randomization:
        return True
    value = startup_hash_seed()
    return value is not None and value.isdigit()


def warn_hash_randomization() -> None:
    """Warn once that PYTHONHASHSEED could not be fixed for this interpreter."""
    global _hash_warned
    if _hash_warned or hash_seed_fixed():
        return
    _hash_warned = True
    warn(
        "PYTHONHASHSEED was not set when Python started, so set/dict iteration order of strings "
        "varies between runs. Start the script with `replicator run -- python ...` (which sets "
        "it) or export PYTHONHASHSEED yourself; this is recorded in the run.",
        RuntimeWarning,
    )


def seed_everything(seed: int, *, deterministic: bool = False, warn: bool = True) -> SeedReport:
    """Seed random, numpy, torch (CPU and all CUDA devices), TensorFlow and JAX if imported.

    With ``deterministic=True`` also turn on torch's deterministic algorithms, disable cuDNN
    benchmarking and set ``CUBLAS_WORKSPACE_CONFIG`` (effective only if CUDA has not started;
    ``replicator run --deterministic`` sets it before the interpreter starts). Every flag set is
    returned in the report. Returns a numpy ``Generator`` in ``report.generator``.
    """
    return _seed(seed, deterministic=deterministic, warn=warn, eager=True)


def seed_loaded(seed: int, *, deterministic: bool = False, warn: bool = True) -> SeedReport:
    """Like :func:`seed_everything` without importing anything: used by ``replicator.start``.

    ``random`` and the frameworks already imported are seeded now; numpy and torch, if the script
    imports them later, are seeded the moment their import finishes (an import hook that
    ``Run.finish`` removes). This keeps ``start()`` in milliseconds. Deterministic mode imports
    numpy as :func:`seed_everything` does.
    """
    return _seed(seed, deterministic=deterministic, warn=warn, eager=deterministic)


def _seed(seed: int, *, deterministic: bool, warn: bool, eager: bool) -> SeedReport:
    seed = check_seed(seed)
    seeded = ["random"]
    flags: dict[str, Any] = {}
    random.seed(seed)
    generator = None
    if eager or "numpy" in sys.modules:
        import numpy as np  # numpy is a dependency; seeding it is what users expect

        np.random.seed(seed)
        generator = np.random.default_rng(np.random.SeedSequence(seed))
        seeded.append("numpy")
    if "torch" in sys.modules:
        seeded += _seed_torch(seed, deterministic, flags)
    elif deterministic:
        for name, value in DETERMINISM_ENV.items():
            os.environ.setdefault(name, value)
            flags[name] = os.environ[name]
    if "tensorflow" in sys.modules:
        seeded += _seed_tensorflow(seed, deterministic, flags)
    if "jax" in sys.modules:
        # JAX has no global RNG: keys are explicit. Record the seed for jax.random.key(seed).
        seeded.append("jax (use jax.random.key(seed))")
    if not eager:
        _SeedOnImport.install(seed, [m for m in ("numpy", "torch") if m not in sys.modules])
        seeded += [f"{m} (when imported)" for m in _SeedOnImport.pending]
    if warn:
        warn_hash_randomization()
    return SeedReport(
        seed=seed,
        seeded=tuple(seeded),
        deterministic=deterministic,
        flags=flags,
        hash_seed_fixed=hash_seed_fixed(),
        generator=generator,
    )


class _SeedOnImport:
    """A ``sys.meta_path`` finder that seeds numpy/torch right after their first import."""

    seed = 0
    pending: list[str] = []  # noqa: RUF012 - one hook per process, by design
    _busy = False

    @classmethod
    def install(cls, seed: int, modules: list[str]) -> None:
        cls.seed = seed
        cls.pending = list(modules)
        if modules and cls not in sys.meta_path:
            sys.meta_path.insert(0, cls)

    @classmethod
    def find_spec(cls, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in cls.pending or cls._busy:
            return None
        import importlib.util

        cls._busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            cls._busy = False
        if spec is None or spec.loader is None:
            return None
        cls.pending.remove(fullname)
        spec.loader = _SeedingLoader(spec.loader, fullname)  # type: ignore[assignment]
        return spec


class _SeedingLoader:
    def __init__(self, loader: Any, name: str) -> None:
        self.loader = loader
        self.name = name

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        seed = _SeedOnImport.seed
        if self.name == "numpy":
            import numpy.random

            numpy.random.seed(seed)
        elif self.name == "torch":
            module.manual_seed(seed)

    def __getattr__(self, item: str) -> Any:
        return getattr(self.loader, item)


def stop_seeding_on_import() -> None:
    """Remove the import hook of :func:`seed_loaded`."""
    _SeedOnImport.pending = []
    if _SeedOnImport in sys.meta_path:
        sys.meta_path.remove(_SeedOnImport)


def _seed_torch(seed: int, deterministic: bool, flags: dict[str, Any]) -> list[str]:
    import torch

    seeded = ["torch"]
    torch.manual_seed(seed)  # also seeds every CUDA device (lazily if CUDA is not started)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        seeded.append(f"torch.cuda ({torch.cuda.device_count()} devices)")
    if deterministic:
        cuda_started = torch.cuda.is_initialized() if torch.cuda.is_available() else False
        if CUBLAS_WORKSPACE_CONFIG.name not in os.environ:
            if cuda_started:
                raise SeedingError(
                    "deterministic=True needs CUBLAS_WORKSPACE_CONFIG=:4096:8 set before CUDA "
                    "starts, and CUDA has already started. Call seed_everything earlier, export "
                    "the variable, or use `replicator run --deterministic`."
                )
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = DETERMINISM_ENV["CUBLAS_WORKSPACE_CONFIG"]
        flags["CUBLAS_WORKSPACE_CONFIG"] = os.environ["CUBLAS_WORKSPACE_CONFIG"]
        torch.use_deterministic_algorithms(True)
        flags["torch.use_deterministic_algorithms"] = True
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        flags["torch.backends.cudnn.deterministic"] = True
        flags["torch.backends.cudnn.benchmark"] = False
    return seeded


def _seed_tensorflow(seed: int, deterministic: bool, flags: dict[str, Any]) -> list[str]:
    import tensorflow as tf

    tf.random.set_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
        flags["tf.config.experimental.enable_op_determinism"] = True
    return ["tensorflow"]


def worker_seed(base_seed: int, worker_id: int, rank: int = 0) -> int:
    """A seed for one data-loading worker: (base seed, worker id, rank) mixed by SeedSequence."""
    import numpy as np

    seq = np.random.SeedSequence([check_seed(base_seed), worker_id, rank])
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def seed_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=replicator.seed_worker)``: seed random, numpy and torch per worker.

    The base seed is torch's per-worker initial seed (itself derived from the loader's generator),
    so workers differ from each other and from run to run only when the run's seed does. The rank
    comes from ``RANK`` (torchrun, Lightning) when set.
    """
    import numpy as np

    rank = int(os.environ.get("RANK", "0") or 0)
    base = None
    if "torch" in sys.modules:
        import torch

        base = torch.initial_seed() % (2**32)
    if base is None:
        base = REPLICATOR_SEED.get() or 0
    seed = worker_seed(base, worker_id, rank)
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
