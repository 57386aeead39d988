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
    "unregister_rng",
]

FORMAT = 1
T = TypeVar("T")

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
    except (KeyError, TypeError, ValueError) as exc:
        raise RNGRestoreError(f"Could not restore Python's random state: {exc}.") from exc
    _restore_numpy_global(state.get("numpy"))
    _restore_torch(state.get("torch"))
    for name, entry in saved.items():
        if name in _registry:
            _restore_generator(name, _registry[name], entry)


def _restore_numpy_global(entry: Any) -> None:
    import numpy as np

    try:
        value = dict(entry)
        value["state"] = {
            "key": np.asarray(entry["state"]["key"], dtype=np.uint32),
            "pos": int(entry["state"]["pos"]),
        }
        np.random.set_state(value)
    except (KeyError, TypeError, ValueError) as exc:
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
    except (KeyError, TypeError, RuntimeError) as exc:
        raise RNGRestoreError(f"Could not restore torch's CPU random state: {exc}.") from exc
    cuda = entry.get("cuda")
    if cuda:
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have != len(cuda):
            raise RNGRestoreError(
                f"The checkpoint holds the random state of {len(cuda)} CUDA device(s), and "
                f"{have} are visible here. Resume on the same devices (CUDA_VISIBLE_DEVICES), "
                "or load with restore_rng=False and accept a different random stream."
            )
        try:
            torch.cuda.set_rng_state_all(cuda)
        except RuntimeError as exc:
            raise RNGRestoreError(f"Could not restore CUDA random state: {exc}.") from exc


def _restore_generator(name: str, obj: Any, entry: dict[str, Any]) -> None:
    kind = _kind(obj)
    if entry.get("kind") != kind:
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
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
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
