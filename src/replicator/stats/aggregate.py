"""rliable-style aggregates over tasks, with stratified bootstrap confidence intervals.

Scores for one method are a ``(runs, tasks)`` array (normalised so that higher is better).
Aggregates follow Agarwal et al. (2021) and rliable's definitions:

- ``iqm``: mean of the middle 50% of all run x task scores (``trim_mean(..., 0.25)``);
- ``mean``: mean over tasks of the per-task mean;
- ``median``: median over tasks of the per-task mean;
- ``optimality_gap``: ``gamma - mean(min(score, gamma))`` (lower is better).

The stratified bootstrap resamples runs with replacement within each task, ``reps`` times, and
reports percentile intervals, as rliable's default does. Unlike rliable (whose ``random_state``
is ignored), all draws come from one stream per method derived from ``seed`` (see
:mod:`replicator.stats._common`), and the draws are vectorised in chunks rather than looped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ._common import level_text, rng_for

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "AGGREGATES",
    "Aggregates",
    "Estimate",
    "PerformanceProfile",
    "aggregate",
    "performance_profile",
    "probability_of_improvement",
]

AGGREGATES = ("iqm", "mean", "median", "optimality_gap")
"""The aggregate statistics :func:`aggregate` computes over runs and tasks."""
# bootstrap draws held at once: ~2 MB of float64 stays in cache while a chunk is sorted
_CHUNK_ELEMENTS = 250_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval ``[low, high]``."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Aggregates:
    """``estimates[method][aggregate]`` for every method and aggregate; ``method_text`` says how."""

    estimates: Mapping[str, Mapping[str, Estimate]]
    aggregates: tuple[str, ...]
    n_runs: Mapping[str, int]
    n_tasks: int
    level: float
    reps: int
    seed: int | None
    method: str

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        rows = []
        for name, per in self.estimates.items():
            for agg, est in per.items():
                rows.append(
                    {
                        "method": name,
                        "aggregate": agg,
                        "value": est.value,
                        "low": est.low,
                        "high": est.high,
                    }
                )
        return pd.DataFrame(rows)


def _scores(values: Any, name: str) -> np.ndarray:
    import numpy as np

    arr = np.array(values, dtype=float, copy=True)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UsageError(
            f"Scores of {name!r} must be a (runs, tasks) array; got shape {arr.shape}."
        )
    if np.isnan(arr).any():
        raise UsageError(f"Scores of {name!r} hold NaN; drop or fill the missing runs first.")
    return arr


def _draws(n: int, m: int, rng: Any, reps: int) -> Any:
    """Yield chunks of stratified resamples as indices into the task-major scores, (reps, tasks, runs).

    Every task draws n of its own runs with replacement (runs resampled within each task).
    Drawing 16-bit integers is the cheapest way numpy offers to make this many small draws.
    """
    import numpy as np

    small = n < 2**15
    offsets = (np.arange(m) * n)[None, :, None]
    chunk = max(1, _CHUNK_ELEMENTS // (n * m))
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        idx = rng.integers(0, n, size=(size, m, n), dtype=np.int16 if small else np.int64)
        yield np.add(idx, offsets, dtype=np.intp)  # widen and offset in one pass


def _map_in_order(fn: Any, items: Any, *, workers: int = 2, inflight: int = 4) -> Any:
    """``map(fn, items)`` on a few threads, in order, with a bounded number of chunks in flight.

    numpy's take and sort release the GIL, so two cores sort two chunks at once; the draws stay
    in the calling thread, so the results are identical to a plain loop.
    """
    import os
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(workers, os.cpu_count() or 1))
    if workers == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Any] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= inflight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _Aggregator:
    """Aggregates of one (runs, tasks) score array from resample indices, one value per rep."""

    def __init__(self, scores: np.ndarray, which: Sequence[str], gamma: float) -> None:
        import numpy as np

        self.which = which
        self.gamma = gamma
        self.n, self.m = scores.shape
        self.flat = np.ascontiguousarray(scores.T).ravel()  # task-major: task j at [j*n, (j+1)*n)
        total = self.n * self.m
        self.lo = int(0.25 * total)  # scipy.stats.trim_mean's cut, as rliable's IQM uses
        self.hi = total - self.lo

    def __call__(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        import numpy as np

        out: dict[str, np.ndarray] = {}
        reps = idx.shape[0]
        values = np.take(self.flat, idx)  # (reps, tasks, runs)
        if "mean" in self.which or "median" in self.which:
            task_means = values.mean(axis=2)
            if "mean" in self.which:
                out["mean"] = task_means.mean(axis=1)
            if "median" in self.which:
                out["median"] = np.median(task_means, axis=1)
        if "optimality_gap" in self.which:
            capped = np.minimum(values, self.gamma)
            out["optimality_gap"] = self.gamma - capped.reshape(reps, -1).mean(axis=1)
        if "iqm" in self.which:
            # a full sort of each row is faster than np.partition with two pivots (SIMD sort)
            ordered = np.sort(values.reshape(reps, -1), axis=1)
            out["iqm"] = ordered[:, self.lo : self.hi].mean(axis=1)
        return out


def _stratified(scores: np.ndarray, rng: Any, reps: int) -> Any:
    """Yield chunks of stratified resamples (runs resampled within each task)."""
    import numpy as np

    n, m = scores.shape
    flat = np.ascontiguousarray(scores.T).ravel()  # task-major, so task j's runs are contiguous
    offsets = (np.arange(m) * n)[None, None, :]
    chunk = max(1, _CHUNK_ELEMENTS // (n * m))
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        idx = rng.integers(0, n, size=(size, n, m)) + offsets
        yield flat[idx]


def aggregate(
    scores: Mapping[str, Any],
    *,
    aggregates: Sequence[str] = AGGREGATES,
    reps: int = 50_000,
    level: float = 0.95,
    seed: int | None = 0,
    gamma: float = 1.0,
) -> Aggregates:
    """Aggregate scores over tasks with stratified bootstrap CIs; see the module docstring."""
    import numpy as np

    unknown = [a for a in aggregates if a not in AGGREGATES]
    if unknown:
        raise UsageError(f"Unknown aggregate(s) {unknown}; choose from {', '.join(AGGREGATES)}.")
    arrays = {str(k): _scores(v, str(k)) for k, v in scores.items()}
    tasks = {a.shape[1] for a in arrays.values()}
    if len(tasks) > 1:
        raise UsageError(f"All methods need the same number of tasks; got {sorted(tasks)}.")
    q = (1 - level) / 2
    estimates: dict[str, dict[str, Estimate]] = {}
    for name, arr in arrays.items():
        agg_of = _Aggregator(arr, aggregates, gamma)
        n, m = arr.shape
        point = agg_of(np.arange(n * m).reshape(1, m, n))
        draws: dict[str, list[np.ndarray]] = {a: [] for a in aggregates}
        chunks = _draws(n, m, rng_for(seed, f"aggregate:{name}"), reps)
        for result in _map_in_order(agg_of, chunks):
            for agg, vals in result.items():
                draws[agg].append(vals)
        per: dict[str, Estimate] = {}
        for agg in aggregates:
            low, high = np.quantile(np.concatenate(draws[agg]), [q, 1 - q])
            per[agg] = Estimate(float(point[agg][0]), float(low), float(high))
        estimates[name] = per
    n_tasks = tasks.pop() if tasks else 0
    runs = {k: int(v.shape[0]) for k, v in arrays.items()}
    method = (
        f"{', '.join(aggregates)} over {n_tasks} task(s) and {'/'.join(map(str, sorted(set(runs.values()))))} "
        f"run(s) per method; {level_text(level)} percentile stratified bootstrap CIs "
        f"({reps:,} resamples of runs within each task, seed {seed})"
    )
    return Aggregates(estimates, tuple(aggregates), runs, n_tasks, level, reps, seed, method)


def _poi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y)/2 per task averaged over tasks; x (..., nx, m), y (..., ny, m)."""
    diff = x[..., :, None, :] - y[..., None, :, :]
    per_task = ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-3, -2))
    return per_task.mean(axis=-1)


def probability_of_improvement(
    x: Any,
    y: Any,
    *,
    reps: int = 50_000,
    level: float = 0.95,
    seed: int | None = 0,
    names: tuple[str, str] = ("X", "Y"),
) -> tuple[Estimate, str]:
    """P(X > Y) averaged over tasks, with an independent stratified bootstrap CI.

    Returns the estimate and a sentence saying how it was computed.
    """
    import numpy as np

    a = _scores(x, names[0])
    b = _scores(y, names[1])
    if a.shape[1] != b.shape[1]:
        raise UsageError(
            f"{names[0]} has {a.shape[1]} tasks and {names[1]} {b.shape[1]}; they must match."
        )
    point = float(_poi(a, b))
    rng_a = rng_for(seed, f"poi:{names[0]}:{names[1]}:a")
    rng_b = rng_for(seed, f"poi:{names[0]}:{names[1]}:b")
    per_rep = a.shape[0] * b.shape[0] * a.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // per_rep)
    vals = []
    gen_a = _stratified(a, rng_a, reps)
    gen_b = _stratified(b, rng_b, reps)
    for ba, bb in zip(gen_a, gen_b):
        for s in range(0, ba.shape[0], chunk):
            vals.append(_poi(ba[s : s + chunk], bb[s : s + chunk]))
    q = (1 - level) / 2
    low, high = np.quantile(np.concatenate(vals), [q, 1 - q])
    text = (
        f"P({names[0]} > {names[1]}) per task (ties counted half) averaged over {a.shape[1]} task(s); "
        f"{level_text(level)} percentile CI from an independent stratified bootstrap ({reps:,} "
        f"resamples, seed {seed}); n={a.shape[0]} vs {b.shape[0]} runs"
    )
    return Estimate(point, float(low), float(high)), text


@dataclass(frozen=True)
class PerformanceProfile:
    """Fraction of run scores above each threshold ``tau``, per method, with bootstrap bands."""

    taus: np.ndarray
    profiles: Mapping[str, np.ndarray]
    low: Mapping[str, np.ndarray]
    high: Mapping[str, np.ndarray]
    level: float
    reps: int
    method: str


def performance_profile(
    scores: Mapping[str, Any],
    taus: Any = None,
    *,
    reps: int = 2_000,
    level: float = 0.95,
    seed: int | None = 0,
) -> PerformanceProfile:
    """Score distributions (rliable's default profile): P(score > tau) over all runs and tasks."""
    import numpy as np

    arrays = {str(k): _scores(v, str(k)) for k, v in scores.items()}
    if taus is None:
        lo = min(float(a.min()) for a in arrays.values())
        hi = max(float(a.max()) for a in arrays.values())
        taus = np.linspace(lo, hi, 101)
    taus = np.array(taus, dtype=float, copy=True)
    q = (1 - level) / 2
    profiles, lows, highs = {}, {}, {}
    for name, arr in arrays.items():
        profiles[name] = (arr.ravel()[:, None] > taus[None, :]).mean(axis=0)
        draws = []
        for boot in _stratified(arr, rng_for(seed, f"profile:{name}"), reps):
            flat = np.sort(boot.reshape(boot.shape[0], -1), axis=1)
            total = flat.shape[1]
            # count of values > tau = total - (number <= tau), per row, via a merged search
            below = np.stack([np.searchsorted(row, taus, side="right") for row in flat])
            draws.append((total - below) / total)
        stacked = np.concatenate(draws)
        lows[name], highs[name] = np.quantile(stacked, [q, 1 - q], axis=0)
    text = (
        f"fraction of run x task scores above each threshold; {level_text(level)} percentile "
        f"stratified bootstrap bands ({reps:,} resamples, seed {seed})"
    )
    return PerformanceProfile(taus, profiles, lows, highs, level, reps, text)
