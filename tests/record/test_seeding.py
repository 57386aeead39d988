"""Seeding: every framework in use, deterministic flags, seed draws, worker seeds."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import replicator
from replicator.errors import SeedingError
from replicator.record.seeding import check_seed, draw_seeds, worker_seed


def test_same_seed_same_numbers_for_random_and_numpy() -> None:
    first = replicator.seed_everything(7)
    a = (random.random(), np.random.rand(), first.generator.random())
    second = replicator.seed_everything(7)
    assert (random.random(), np.random.rand(), second.generator.random()) == a
    third = replicator.seed_everything(8)
    assert third.generator.random() != a[2]
    assert {"random", "numpy"} <= set(first.seeded)


def test_torch_is_seeded_and_deterministic_flags_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    report = replicator.seed_everything(3, deterministic=True)
    x = torch.rand(3)
    replicator.seed_everything(3, deterministic=True)
    assert torch.equal(torch.rand(3), x)
    assert "torch" in report.seeded
    assert report.flags["torch.use_deterministic_algorithms"] is True
    assert report.flags["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark is False
    torch.use_deterministic_algorithms(False)


def test_draw_seeds_is_reproducible_from_its_root_and_independent() -> None:
    root, seeds = draw_seeds(5)
    assert draw_seeds(5, root=root) == (root, seeds)
    assert len(set(seeds)) == 5 and all(0 <= s < 2**32 for s in seeds)
    assert draw_seeds(5, root=root + 1)[1] != seeds
    with pytest.raises(SeedingError, match="at least 1"):
        draw_seeds(0)


def test_seed_range_is_checked() -> None:
    assert check_seed("12") == 12
    with pytest.raises(SeedingError, match="between 0 and 4294967295"):
        check_seed(2**32)
    with pytest.raises(SeedingError, match="must be an integer"):
        check_seed(1.5)


def test_worker_seeds_mix_worker_and_rank() -> None:
    seeds = {worker_seed(1, w, r) for w in range(4) for r in range(2)}
    assert len(seeds) == 8
    assert worker_seed(1, 0, 0) == worker_seed(1, 0, 0)


def test_dataloader_workers_are_seeded_differently_and_repeatably() -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, Dataset

    class Noise(Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> float:
            return float(np.random.rand())

    def draw() -> list[float]:
        g = torch.Generator()
        g.manual_seed(5)
        loader = DataLoader(
            Noise(), batch_size=1, num_workers=2, worker_init_fn=replicator.seed_worker, generator=g
        )
        return [float(b) for b in loader]

    first = draw()
    assert draw() == first
    assert len(set(first)) == 4  # workers do not repeat each other's numpy stream


FRAMEWORK_SEEDING = r"""
import json, sys
import replicator

framework = sys.argv[1]
if framework == "jax":
    import jax

    with replicator.start({}, seed=int(sys.argv[2]), store=sys.argv[3]) as run:
        # JAX has no global generator: the recorded seed is the key to use
        draws = jax.random.uniform(jax.random.key(run.seed), (4,)).tolist()
else:
    import tensorflow as tf

    with replicator.start({}, seed=int(sys.argv[2]), store=sys.argv[3], deterministic=True):
        draws = tf.random.uniform((4,)).numpy().tolist()  # the global generator, as seeded
print(json.dumps(draws))
"""


def _framework_runs(framework: str, tmp_path: Path) -> list[tuple[list[float], dict]]:
    """Two runs with seed 5 and one with seed 6, each in its own interpreter."""
    from replicator.store import Store

    if importlib.util.find_spec(framework) is None:
        pytest.skip(
            f"{framework} is not installed ({'pip install jax[cpu]' if framework == 'jax' else 'pip install tensorflow'})"
        )
    out = []
    for i, seed in enumerate((5, 5, 6)):
        store = tmp_path / f"store{i}"
        proc = subprocess.run(
            [sys.executable, "-c", FRAMEWORK_SEEDING, framework, str(seed), str(store)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        assert proc.returncode == 0, proc.stderr
        (record,) = Store(store).records()
        seeding = json.loads((record.dir / "seeding.json").read_text())
        out.append((json.loads(proc.stdout), seeding))
    return out


def test_jax_runs_record_the_key_seed_and_repeat_their_draws(tmp_path: Path) -> None:
    (a, seeding), (b, _), (c, _) = _framework_runs("jax", tmp_path)
    assert a == b and a != c
    assert seeding["seed"] == 5
    assert "jax (use jax.random.key(seed))" in seeding["seeded"]


def test_tensorflow_global_generator_is_seeded_with_op_determinism(tmp_path: Path) -> None:
    (a, seeding), (b, _), (c, _) = _framework_runs("tensorflow", tmp_path)
    assert a == b and a != c
    assert "tensorflow" in seeding["seeded"]
    assert seeding["flags"]["tf.config.experimental.enable_op_determinism"] is True
