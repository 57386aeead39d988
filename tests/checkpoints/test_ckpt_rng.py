"""Every RNG stream is saved and restored exactly; a restore that cannot be exact raises."""

from __future__ import annotations

import random

import numpy as np
import pytest

from replicator.checkpoints import CheckpointManager
from replicator.checkpoints.rng import (
    register_rng,
    registered_rngs,
    restore_rng_state,
    rng_state,
    unregister_rng,
)
from replicator.errors import RNGRestoreError


@pytest.fixture(autouse=True)
def _empty_registry():
    for name in registered_rngs():
        unregister_rng(name)
    yield
    for name in registered_rngs():
        unregister_rng(name)


def _draw(gen, tgen=None):
    out = [random.random(), float(np.random.rand()), float(gen.random())]
    out.append(float(gen.spawn(1)[0].random()))  # depends on the SeedSequence's spawn counter
    if tgen is not None:
        import torch

        out += [torch.rand(2).tolist(), torch.rand(2, generator=tgen).tolist()]
    return out


def test_numpy_python_streams_round_trip_with_seed_sequence():
    gen = register_rng(np.random.default_rng(12), name="data")
    gen.spawn(3)
    random.seed(1)
    np.random.seed(2)
    state = rng_state()
    first = _draw(gen)
    restore_rng_state(state)
    assert _draw(gen) == first
    assert gen.bit_generator.seed_seq.n_children_spawned == 4


def test_torch_streams_round_trip_through_a_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    gen = register_rng(np.random.default_rng(3))
    tgen = register_rng(torch.Generator().manual_seed(7), name="loader")
    assert set(registered_rngs()) == {"numpy0", "loader"}
    manager = CheckpointManager(tmp_path)
    manager.save({}, step=1)
    first = _draw(gen, tgen)
    _draw(gen, tgen)  # move every stream on
    manager.load()
    assert _draw(gen, tgen) == first


def test_generators_missing_or_extra_raise():
    register_rng(np.random.default_rng(1), name="a")
    state = rng_state()
    unregister_rng("a")
    register_rng(np.random.default_rng(1), name="b")
    with pytest.raises(
        RNGRestoreError, match=r"saved but not registered now: a; registered now .*: b"
    ):
        restore_rng_state(state)


def test_kind_and_bit_generator_mismatch_raise():
    torch = pytest.importorskip("torch")
    register_rng(np.random.default_rng(1), name="g")
    state = rng_state()
    register_rng(torch.Generator(), name="g")
    with pytest.raises(RNGRestoreError, match="was a numpy generator when saved and is a torch"):
        restore_rng_state(state)
    register_rng(np.random.Generator(np.random.MT19937(1)), name="g")
    with pytest.raises(RNGRestoreError, match="used PCG64 when saved and uses MT19937 now"):
        restore_rng_state(state)


def test_damaged_torch_state_and_foreign_devices_raise():
    torch = pytest.importorskip("torch")
    state = rng_state()
    state["torch"]["cpu"] = torch.zeros(3, dtype=torch.uint8)
    with pytest.raises(RNGRestoreError, match="torch's CPU random state"):
        restore_rng_state(state)
    state = rng_state()
    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    state["torch"]["cuda"] = [torch.get_rng_state()] * (have + 1)
    with pytest.raises(RNGRestoreError, match=rf"{have + 1} CUDA device\(s\), and {have} are"):
        restore_rng_state(state)


def test_unknown_format_raises():
    with pytest.raises(RNGRestoreError, match="unknown format"):
        restore_rng_state({"python": None})


def test_register_rejects_other_objects():
    with pytest.raises(TypeError, match=r"numpy Generator/BitGenerator or a torch\.Generator"):
        register_rng(random.Random(1))
