"""The results table behind every report format: one row per group, every number explained.

:func:`results_table` takes the runs DataFrame of :func:`replicator.load_runs`, groups it by a
config key, describes the metric per group (:func:`replicator.stats.describe`), compares each
group with a baseline (:func:`replicator.stats.compare`), corrects the p-values for multiple
comparisons, marks the best group, and writes the plain-language methods paragraph that goes
under the table ("mean ± sample SD over 5 seeds; 95% t-interval; Welch's t-test against linear,
Holm-corrected").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..stats._common import column, fmt, level_text
from ..stats.compare import Comparison, compare, correct
from ..stats.describe import GroupSummary, describe

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ResultRow", "ResultsTable", "parse_baseline", "results_table"]

TEST_NAMES = {
    "welch": "Welch's t-test",
    "mann-whitney": "the Mann-Whitney U test",
    "permutation": "a permutation test of the difference in means",
}
CORRECTION_NAMES = {
    "holm": "Holm-corrected",
    "bh": "Benjamini-Hochberg-corrected",
    "none": "uncorrected",
}


@dataclass(frozen=True)
class ResultRow:
    """One group's row of a results table: n, the statistic with its interval, and the test against the baseline."""

    group: str
    n: int
    center: float
    std: float
    low: float
    high: float
    difference: float | None
    p_value: float | None
    p_adjusted: float | None
    significant: bool
    best: bool
    baseline: bool
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResultsTable:
    """Rows plus everything a reader needs to know how they were computed."""

    metric: str
    by: str | None
    mode: str
    center: str
    level: float
    interval: str
    test: str | None
    correction: str
    alpha: float
    baseline: str | None
    rows: tuple[ResultRow, ...]
    methods: str
    caption: str
    warnings: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    (self.by or "group"): r.group,
                    "n": r.n,
                    self.center: r.center,
                    "std": r.std,
                    "ci_low": r.low,
                    "ci_high": r.high,
                    "difference": r.difference,
                    "p_value": r.p_value,
                    "p_adjusted": r.p_adjusted,
                    "significant": r.significant,
                    "best": r.best,
                    "baseline": r.baseline,
                }
                for r in self.rows
            ]
        )


def parse_baseline(baseline: str | None, by: str | None) -> str | None:
    """``"model=linear"`` -> ``"linear"`` after checking that the key is the grouping key."""
    if baseline is None:
        return None
    if "=" not in baseline:
        return baseline
    key, _, value = baseline.partition("=")
    key = key.strip().removeprefix("config.")
    if by is None or key != by.removeprefix("config."):
        raise UsageError(
            f"--baseline {baseline!r} names '{key}', but the table is grouped by "
            f"{by!r}; use --baseline {by or 'KEY'}=VALUE with the --group-by key."
        )
    return value.strip()


def _seed_word(ns: list[int]) -> str:
    if not ns:
        return "no runs"
    if min(ns) == max(ns):
        return f"{ns[0]} seed{'s' if ns[0] != 1 else ''}"
    return f"{min(ns)}-{max(ns)} seeds"


def results_table(
    runs: pd.DataFrame,
    *,
    metric: str,
    by: str | None = None,
    mode: str = "max",
    baseline: str | None = None,
    center: str = "mean",
    level: float = 0.95,
    interval: str = "auto",
    test: str = "welch",
    correction: str = "holm",
    alpha: float = 0.05,
    reps: int = 10_000,
    seed: int | None = 0,
) -> ResultsTable:
    """Summarise ``metric`` per ``by`` group of ``runs`` and test each group against ``baseline``.

    ``mode`` says whether higher (max) or lower (min) is better; the best centre is marked.
    ``baseline`` is a group label or ``KEY=VALUE`` with KEY the ``by`` key.
    """
    _check_choices(mode=mode, test=test, correction=correction)
    mcol = column(runs, metric, prefixes=("summary.",))
    missing = int(runs[mcol].isna().sum())
    data = runs.dropna(subset=[mcol])
    if data.empty:
        raise UsageError(f"No run recorded the metric '{metric}'; nothing to tabulate.")
    desc = describe(
        data,
        by=by,
        metric=metric,
        center=center,
        spread="ci",
        level=level,
        interval=interval,
        reps=reps,
        seed=seed,
    )
    base_label = parse_baseline(baseline, by)
    groups = [g.group for g in desc.groups]
    if base_label is not None and base_label not in groups:
        raise UsageError(f"Baseline {base_label!r} is not one of the groups: {', '.join(groups)}.")
    comparisons: dict[str, Comparison] = {}
    if base_label is not None:
        samples = _group_samples(data, mcol, by=by, only_group=groups[0])
        comparisons = _compare_with_baseline(
            samples, groups, base_label, test=test, alpha=alpha, level=level, reps=reps, seed=seed
        )
    corrected = correct([c.p_value for c in comparisons.values()], method=correction, alpha=alpha)
    adjusted = dict(zip(comparisons, corrected.adjusted))
    rows = _rows(
        desc.groups, comparisons, adjusted, by=by, base_label=base_label, alpha=alpha, mode=mode
    )
    kinds = sorted({g.interval for g in desc.groups})
    table = ResultsTable(
        metric=metric,
        by=by,
        mode=mode,
        center=center,
        level=level,
        interval=" / ".join(kinds),
        test=test if comparisons else None,
        correction=correction,
        alpha=alpha,
        baseline=base_label,
        rows=rows,
        methods="",
        caption="",
        warnings=tuple(dict.fromkeys(w for c in comparisons.values() for w in c.warnings)),
    )
    return replace(
        table,
        methods=_methods(table, kinds, comparisons=len(comparisons), missing=missing, seed=seed),
        caption=_caption(table),
    )


def _check_choices(*, mode: str, test: str, correction: str) -> None:
    if mode not in ("max", "min"):
        raise UsageError(f"mode must be 'max' or 'min'; got {mode!r}.")
    if test not in TEST_NAMES:
        raise UsageError(f"test must be one of {', '.join(TEST_NAMES)}; got {test!r}.")
    if correction not in CORRECTION_NAMES:
        raise UsageError(f"correction must be holm, bh or none; got {correction!r}.")


def _group_samples(
    data: pd.DataFrame, mcol: str, *, by: str | None, only_group: str
) -> dict[str, Any]:
    """The metric's values per group label (one group, ``only_group``, without ``by``)."""
    if by is None:
        return {only_group: data[mcol].to_numpy(float)}
    samples: dict[str, Any] = {}
    bcol = column(data, by, prefixes=("config.",))
    for key, part in data.groupby(bcol, sort=True, dropna=False):
        samples[str(key[0] if isinstance(key, tuple) else key)] = part[mcol].to_numpy(float)
    return samples


def _compare_with_baseline(
    samples: dict[str, Any],
    groups: list[str],
    base_label: str,
    *,
    test: str,
    alpha: float,
    level: float,
    reps: int,
    seed: int | None,
) -> dict[str, Comparison]:
    """Each group with at least 2 runs against the baseline (itself at least 2 runs)."""
    comparisons = {}
    for label in groups:
        if label != base_label and len(samples[label]) >= 2 and len(samples[base_label]) >= 2:
            comparisons[label] = compare(
                samples[label],
                samples[base_label],
                test=test,
                alpha=alpha,
                level=level,
                reps=reps,
                seed=seed,
                names=(label, base_label),
            )
    return comparisons


def _rows(
    described: Sequence[GroupSummary],
    comparisons: dict[str, Comparison],
    adjusted: dict[str, float],
    *,
    by: str | None,
    base_label: str | None,
    alpha: float,
    mode: str,
) -> tuple[ResultRow, ...]:
    centres = [g.center for g in described if not math.isnan(g.center)]
    best_value = (max if mode == "max" else min)(centres) if centres else math.nan
    rows = []
    for g in described:
        comp = comparisons.get(g.group)
        p_adj = adjusted.get(g.group)
        rows.append(
            ResultRow(
                group=g.group if by is not None else "all runs",
                n=g.n,
                center=g.center,
                std=g.std,
                low=g.low,
                high=g.high,
                difference=comp.difference if comp else None,
                p_value=comp.p_value if comp else None,
                p_adjusted=p_adj,
                significant=bool(p_adj is not None and p_adj < alpha),
                best=g.center == best_value and len(described) > 1,
                baseline=g.group == base_label,
                warnings=comp.warnings if comp else (),
            )
        )
    return tuple(rows)


_CENTRE_WORDS = {"mean": "mean", "median": "median", "iqm": "interquartile mean"}


def _methods(
    table: ResultsTable, kinds: list[str], *, comparisons: int, missing: int, seed: int | None
) -> str:
    """The plain-language methods paragraph under the table."""
    ns = [r.n for r in table.rows]
    centre_word = _CENTRE_WORDS[table.center]
    per = f" per {table.by.removeprefix('config.')}" if table.by else ""
    sentences = [
        f"{table.metric}: {centre_word} ± sample standard deviation over {_seed_word(ns)}{per}",
        "; ".join(kinds).replace(" (n=1)", "")
        + ("" if len(kinds) == 1 else " (chosen per group by n)"),
    ]
    if comparisons:
        sentences.append(
            f"{TEST_NAMES[str(table.test)]} of each group against {table.baseline} "
            f"(Δ: difference of means), {CORRECTION_NAMES[table.correction]} over "
            f"{comparisons} comparison(s); † marks adjusted p < {table.alpha:g}"
        )
    elif table.baseline is not None:
        sentences.append(f"no comparison with {table.baseline} was possible (fewer than 2 runs)")
    if len(table.rows) > 1:
        sentences.append(f"{'highest' if table.mode == 'max' else 'lowest'} {centre_word} in bold")
    if missing:
        sentences.append(f"{missing} run(s) without '{table.metric}' left out")
    methods = "; ".join(sentences) + "."
    if any("bootstrap" in k for k in kinds):
        methods += f" Bootstrap resamples use seed {seed}."
        if min(ns) < 20:
            methods += " Bootstrap intervals tend to be too narrow with fewer than ~20 seeds."
    return methods


def _caption(table: ResultsTable) -> str:
    centre_word = _CENTRE_WORDS[table.center]
    vs = (
        f"; † {TEST_NAMES[table.test]} vs {table.baseline}, "
        f"{CORRECTION_NAMES[table.correction]}, p < {table.alpha:g}"
        if table.test is not None
        else ""
    )
    return (
        f"{table.metric} ({centre_word} ± SD, {level_text(table.level)} CI; n per row)"
        f"{vs}; best in bold ({table.mode})."
    )


def number(x: float | None, digits: int = 3) -> str:
    return "" if x is None else fmt(x, digits)
