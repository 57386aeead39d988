"""``seeds_needed``: how many seeds per arm a two-sample t-test needs to detect an effect.

Power of the two-sided (or one-sided) two-sample t-test with equal group sizes, from the
noncentral t distribution (df = 2n - 2, noncentrality = d * sqrt(n / 2)), searched for the
smallest n that reaches the asked power. For d = 1, alpha = 0.05 and power 0.8 this gives 17.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UsageError

__all__ = ["SeedsNeeded", "power_of", "seeds_needed"]

MAX_SEEDS = 100_000


@dataclass(frozen=True)
class SeedsNeeded:
    """Seeds per arm (``n``), the power reached with that many, and how it was computed."""

    n: int
    power: float
    effect_size: float
    alpha: float
    target_power: float
    method: str

    def __int__(self) -> int:
        return self.n


def power_of(n: int, effect_size: float, *, alpha: float = 0.05, two_sided: bool = True) -> float:
    """Power of a two-sample t-test with ``n`` seeds per arm and standardised effect ``d``."""
    from scipy import stats as st

    if n < 2:
        return 0.0
    df = 2 * n - 2
    ncp = abs(effect_size) * math.sqrt(n / 2)
    if two_sided:
        crit = st.t.ppf(1 - alpha / 2, df)
        return float(st.nct.sf(crit, df, ncp) + st.nct.cdf(-crit, df, ncp))
    crit = st.t.ppf(1 - alpha, df)
    return float(st.nct.sf(crit, df, ncp))


def seeds_needed(
    effect: float,
    sd: float = 1.0,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
) -> SeedsNeeded:
    """Seeds per arm to detect a difference ``effect`` between two methods whose results vary
    with standard deviation ``sd`` across seeds (``effect/sd`` is Cohen's d).

    >>> seeds_needed(1.0).n
    17
    """
    if sd <= 0 or not math.isfinite(sd):
        raise UsageError(f"sd must be a positive number (the seed-to-seed SD); got {sd!r}.")
    if effect == 0 or not math.isfinite(effect):
        raise UsageError(f"effect must be a non-zero difference to detect; got {effect!r}.")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise UsageError(f"alpha and power must lie between 0 and 1; got {alpha!r} and {power!r}.")
    d = abs(effect) / sd
    # doubling then bisection: power grows with n
    hi = 2
    while power_of(hi, d, alpha=alpha, two_sided=two_sided) < power:
        hi *= 2
        if hi > MAX_SEEDS:
            raise UsageError(
                f"An effect of d={d:.3g} needs more than {MAX_SEEDS:,} seeds per arm; "
                "it is too small to detect by seeds alone."
            )
    lo = max(2, hi // 2)
    while lo < hi:
        mid = (lo + hi) // 2
        if power_of(mid, d, alpha=alpha, two_sided=two_sided) >= power:
            hi = mid
        else:
            lo = mid + 1
    reached = power_of(hi, d, alpha=alpha, two_sided=two_sided)
    method = (
        f"{'two' if two_sided else 'one'}-sided two-sample t-test, equal seeds per arm, "
        f"Cohen's d = {d:.3g} (effect {effect:g} / SD {sd:g}), alpha = {alpha:g}, "
        f"power {reached:.3f} >= {power:g} (noncentral t)"
    )
    return SeedsNeeded(hi, reached, d, alpha, power, method)
