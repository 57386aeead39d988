"""Every random stream of a process, captured and restored: the RNG half of an exact resume.

``rng_state()`` returns the state of Python's ``random``, numpy's global generator, every
registered numpy ``Generator`` (with its ``SeedSequence``, so ``spawn()`` after a resume gives the
same children), torch's CPU generator, every CUDA device's generator (when CUDA has started) and
every registered ``torch.Generator`` (a DataLoader's, say). ``restore_rng_state(state)`` puts
them back and raises :class:`RNGRestoreError` when any stream cannot be restored: a resume that
silently continues with different randomness is worse than one that stops.

The state is plain data (ints, lists, dicts) plus torch ``uint8`` tensors; nothing is pickled.
numpy's ``bit_generator.state`` alone loses the spawn counter of the ``SeedSequence``, so the
sequence's entropy, spawn key, pool size and children count are stored next to it.

Register the generators a script makes itself before saving or loading a checkpoint::

    gen = torch.Generator().manual_seed(run.seed)
    replicator.register_rng(gen, name="loader")       # DataLoader(..., generator=gen)
    rng = replicator.register_rng(np.random.default_rng(run.seed), name="noise")
"""

from __future__ import annotations

import random
import sys
from typing import Any, TypeVar

from ..errors import RNGRestoreError

__all__ = [
    "RNGRestoreError",
    "register_rng",
    "registered_rngs",
    "restore_rng_state",
    "rng_state",
    "rng_state_problem",
    "unregister_rng",
]

FORMAT = 1
T = TypeVar("T")
# What a malformed state raises while it is parsed: anything else is a bug, not bad data.
_BAD_STATE = (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError)
_NUMPY_BIT_GENERATORS = ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")

# name -> numpy Generator / BitGenerator or torch.Generator, in registration order.
_registry: dict[str, Any] = {}


def _kind(obj: Any) -> str:
    module = type(obj).__module__
    if module.startswith("numpy"):
        import numpy as np

        if isinstance(obj, (np.random.Generator, np.random.BitGenerator)):
            return "numpy"
    if module.startswith("torch") and type(obj).__name__ == "Generator":
        return "torch"
    raise TypeError(
        f"register_rng() takes a numpy Generator/BitGenerator or a torch.Generator, "
        f"got {type(obj).__name__}."
    )


# Generators that may be registered on one side only (see Run.rng).
OPTIONAL_NAMES = frozenset({"run.rng"})


def register_rng(generator: T, *, name: str | None = None) -> T:
    """Include ``generator`` in every checkpoint's RNG state; returns it for chaining.

    ``name`` identifies the stream across processes: give each generator a stable name (the
    default, ``numpy0``/``torch1``..., depends on registration order). Registering a name again
    replaces the earlier generator.
    """
    kind = _kind(generator)
    if name is None:
        index = sum(1 for g in _registry.values() if _kind(g) == kind)
        name = f"{kind}{index}"
    _registry[str(name)] = generator
    return generator


def unregister_rng(name: str) -> None:
    """Stop saving the stream registered as ``name`` (no error if there is none)."""
    _registry.pop(name, None)


def registered_rngs() -> dict[str, Any]:
    """A copy of the registry: name -> generator."""
    return dict(_registry)


def _numpy_generator_state(obj: Any) -> dict[str, Any]:
    bitgen = getattr(obj, "bit_generator", obj)
    state = _plain(bitgen.state)
    seq = getattr(bitgen, "seed_seq", None)
    seed_seq = None
    if seq is not None and hasattr(seq, "n_children_spawned"):
        entropy = seq.entropy
        seed_seq = {
            "entropy": _plain(entropy),
            "spawn_key": [int(k) for k in seq.spawn_key],
            "pool_size": int(seq.pool_size),
            "n_children_spawned": int(seq.n_children_spawned),
        }
    return {"kind": "numpy", "state": state, "seed_seq": seed_seq}


def _plain(value: Any) -> Any:
    """numpy arrays and scalars inside an RNG state -> lists and ints (exact for integers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def rng_state() -> dict[str, Any]:
    """The state of every random stream this process uses (see the module docstring)."""
    import numpy as np  # a dependency of replicator

    version, internal, gauss = random.getstate()
    legacy = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "format": FORMAT,
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": _plain(legacy),
        "generators": {},
    }
    if "torch" in sys.modules:
        import torch

        state["torch"] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            # Only a CUDA that has started has consumed randomness; querying would start it.
            state["torch"]["cuda"] = list(torch.cuda.get_rng_state_all())
    for name, obj in _registry.items():
        if _kind(obj) == "numpy":
            state["generators"][name] = _numpy_generator_state(obj)
        else:
            state["generators"][name] = {
                "kind": "torch",
                "device": str(obj.device),
                "state": obj.get_state(),
            }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured; raises :class:`RNGRestoreError` on any mismatch.

    Every generator named in ``state`` must be registered now (under the same name and kind),
    and every registered generator must be in ``state``.
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RNGRestoreError(
            f"The RNG state has an unknown format ({type(state).__name__}, format "
            f"{state.get('format') if isinstance(state, dict) else None!r}); it was not written "
            "by this version of replicator.rng_state()."
        )
    saved = dict(state.get("generators") or {})
    # run.rng registers itself on first use, so a script may or may not have it on either side
    missing = sorted(set(saved) - set(_registry) - OPTIONAL_NAMES)
    extra = sorted(set(_registry) - set(saved) - OPTIONAL_NAMES)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"saved but not registered now: {', '.join(missing)}")
        if extra:
            parts.append(f"registered now but not in the checkpoint: {', '.join(extra)}")
        raise RNGRestoreError(
            "The registered random generators differ from the checkpoint's ("
            + "; ".join(parts)
            + "). Register the same generators, with the same names, before loading "
            "(replicator.register_rng(gen, name=...)), or load with restore_rng=False."
        )
    try:
        python = state["python"]
        random.setstate((int(python["version"]), tuple(python["state"]), python["gauss"]))
    except _BAD_STATE as exc:
        raise RNGRestoreError(f"Could not restore Python's random state: {exc}.") from exc
    _restore_numpy_global(state.get("numpy"))
    _restore_torch(state.get("torch"))
    for name, entry in saved.items():
        if name in _registry:
            _restore_generator(name, _registry[name], entry)


def _restore_numpy_global(entry: Any, target: Any = None) -> None:
    import numpy as np

    try:
        value = dict(entry)
        value["state"] = {
            "key": np.asarray(entry["state"]["key"], dtype=np.uint32),
            "pos": int(entry["state"]["pos"]),
        }
        (np.random if target is None else target).set_state(value)
    except _BAD_STATE as exc:
        raise RNGRestoreError(f"Could not restore numpy's global random state: {exc}.") from exc


def _restore_torch(entry: Any) -> None:
    if entry is None:
        return
    try:
        import torch
    except ImportError as exc:
        raise RNGRestoreError(
            "The checkpoint holds torch random state but torch cannot be imported here."
        ) from exc
    try:
        torch.set_rng_state(entry["cpu"])
    except (*_BAD_STATE, RuntimeError) as exc:
        raise RNGRestoreError(f"Could not restore torch's CPU random state: {exc}.") from exc
    cuda = entry.get("cuda")
    if cuda:
        if not isinstance(cuda, list):
            raise RNGRestoreError(f"The checkpoint's CUDA random state is a {type(cuda).__name__}.")
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have != len(cuda):
            raise RNGRestoreError(
                f"The checkpoint holds the random state of {len(cuda)} CUDA device(s), and "
                f"{have} are visible here. Resume on the same devices (CUDA_VISIBLE_DEVICES), "
                "or load with restore_rng=False and accept a different random stream."
            )
        try:
            torch.cuda.set_rng_state_all(cuda)
        except (*_BAD_STATE, RuntimeError) as exc:
            raise RNGRestoreError(f"Could not restore CUDA random state: {exc}.") from exc


def _restore_generator(name: str, obj: Any, entry: Any) -> None:
    kind = _kind(obj)
    if not isinstance(entry, dict) or entry.get("kind") != kind:
        raise RNGRestoreError(
            f"Random generator '{name}' was a {entry.get('kind')} generator when saved and is a "
            f"{kind} generator now; register the same kind under that name."
        )
    try:
        if kind == "torch":
            obj.set_state(entry["state"])
            return
        bitgen = getattr(obj, "bit_generator", obj)
        saved = entry["state"]
        if saved.get("bit_generator") != type(bitgen).__name__:
            raise RNGRestoreError(
                f"Random generator '{name}' used {saved.get('bit_generator')} when saved and "
                f"uses {type(bitgen).__name__} now; make it with the same bit generator."
            )
        value = _numpy_state_value(saved)
        seq = entry.get("seed_seq")
        if seq is None:
            bitgen.state = value
            return
        import numpy as np

        seed_seq = np.random.SeedSequence(
            seq["entropy"],
            spawn_key=tuple(seq["spawn_key"]),
            pool_size=int(seq["pool_size"]),
            n_children_spawned=int(seq["n_children_spawned"]),
        )
        # __setstate__ with (state, seed_seq) is how numpy unpickles a generator: it keeps
        # the spawn counter, which assigning .state alone would lose.
        bitgen.__setstate__((value, seed_seq))
        if bitgen.seed_seq.n_children_spawned != seed_seq.n_children_spawned:
            raise RNGRestoreError(
                f"numpy {np.__version__} cannot restore the SeedSequence of generator '{name}'; "
                "upgrade numpy (>= 1.25) for exact spawn() after a resume."
            )
    except RNGRestoreError:
        raise
    except (*_BAD_STATE, RuntimeError) as exc:
        raise RNGRestoreError(f"Could not restore random generator '{name}': {exc}.") from exc


def _numpy_state_value(saved: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    value = dict(saved)
    inner = value.get("state")
    if isinstance(inner, dict) and isinstance(inner.get("key"), list):
        inner = dict(inner)
        inner["key"] = np.asarray(inner["key"], dtype=np.uint32)
        value["state"] = inner
    return value


def rng_state_problem(state: Any, *, dry: bool = False) -> str | None:
    """What is wrong with a saved RNG state (None: nothing), without touching any stream.

    Each stream is loaded into a fresh generator of its own, so a malformed state (a damaged or
    crafted checkpoint) is refused before the process's streams change. With ``dry`` the
    tensors were checked but not built (they are None), and only the rest is checked.
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return "not a dict of format 1"
    python = state.get("python")
    try:
        random.Random().setstate((python["version"], tuple(python["state"]), python["gauss"]))  # type: ignore[index]
    except _BAD_STATE as exc:
        return f"Python's random state: {exc}"
    import numpy as np

    try:
        _restore_numpy_global(state.get("numpy"), np.random.RandomState())
    except RNGRestoreError as exc:
        return f"numpy's global state: {exc.__cause__}"
    torch = state.get("torch")
    if torch is not None:
        cuda = torch.get("cuda") if isinstance(torch, dict) else None
        if not isinstance(torch, dict) or "cpu" not in torch:
            return "torch's state has no 'cpu' entry"
        if not (cuda is None or isinstance(cuda, list)):
            return f"torch's CUDA state is a {type(cuda).__name__}"
        tensors = [torch["cpu"], *(cuda or [])]
        if not dry and not all(_is_byte_tensor(t) for t in tensors):
            return "torch's state is not made of uint8 tensors"
    generators = state.get("generators")
    if not isinstance(generators, dict):
        return f"its generators are a {type(generators).__name__}, not a dict"
    for name, entry in generators.items():
        problem = _generator_problem(entry, dry=dry)
        if problem:
            return f"generator '{name}': {problem}"
    return None


def _is_byte_tensor(value: Any) -> bool:
    return type(value).__name__ == "Tensor" and str(getattr(value, "dtype", "")) == "torch.uint8"


def _generator_problem(entry: Any, *, dry: bool) -> str | None:
    if not isinstance(entry, dict) or entry.get("kind") not in ("numpy", "torch"):
        return "not a dict of kind 'numpy' or 'torch'"
    if entry["kind"] == "torch":
        return None if dry or _is_byte_tensor(entry.get("state")) else "not a uint8 tensor"
    import numpy as np

    saved = entry.get("state")
    kind = saved.get("bit_generator") if isinstance(saved, dict) else None
    if not isinstance(saved, dict) or kind not in _NUMPY_BIT_GENERATORS:
        return f"bit generator {kind!r}, not one of {', '.join(_NUMPY_BIT_GENERATORS)}"
    seq = entry.get("seed_seq")
    try:
        getattr(np.random, kind)().state = _numpy_state_value(saved)
        if seq is not None:
            np.random.SeedSequence(
                seq["entropy"],
                spawn_key=tuple(seq["spawn_key"]),
                pool_size=int(seq["pool_size"]),
                n_children_spawned=int(seq["n_children_spawned"]),
            )
    except _BAD_STATE as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
