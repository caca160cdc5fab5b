"""Closed-loop benchmark metrics (Liang et al. 2021, npj Comput. Mater. 7, 188).

An experiment sequence is the order in which a planner measured pool candidates. Against a target
set (the top 5% of the pool):

- Top%(i): the fraction of targets found after `i` experiments.
- Random search is analytic: after `i` of `N` experiments it has found `i / N` of the targets on
  average.
- Enhancement factor EF(i) = Top%(i) / (i / N).
- Acceleration factor AF(L) = experiments random needs to reach Top% = L (that is `L * N`) divided
  by the experiments the planner needed. A run that never reached L has no AF: it is reported as
  not reached, never extrapolated.

Curves of runs that stopped early (they found 80% of the targets) are carried forward at their last
value, so mean curves past a stop are lower bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Interval",
    "acceleration_factor",
    "enhancement_curve",
    "experiments_to_reach",
    "first_hit",
    "mean_interval",
    "random_top",
    "top_curve",
]

#: Two-sided 95% Student-t quantiles by degrees of freedom (1..30); larger use the normal value.
_T95 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% confidence interval over seeds."""

    mean: float
    low: float
    high: float
    n: int

    def fmt(self, digits: int = 2) -> str:
        if self.n == 0 or not math.isfinite(self.mean):
            return "n/a"
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        hi = "inf" if not math.isfinite(self.high) else f"{self.high:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {hi}]"


def t95(dof: int) -> float:
    """The two-sided 95% Student-t quantile."""
    return _T95[dof - 1] if 1 <= dof <= len(_T95) else 1.959964


def mean_interval(values: Sequence[float] | np.ndarray) -> Interval:
    """Mean and 95% t-interval of independent values (one per seed).

    The interval of values that are all non-negative is cut at zero.
    """
    a = np.asarray(values, dtype=np.float64)
    n = a.size
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    m = float(a.mean())
    if n == 1:
        return Interval(m, m, m, 1)
    half = t95(n - 1) * float(a.std(ddof=1)) / math.sqrt(n)
    # counts, fractions and factors are never negative: neither is their interval
    low = max(m - half, 0.0) if bool((a >= 0).all()) else m - half
    return Interval(m, low, m + half, n)


def top_curve(order: Sequence[int], targets: Sequence[int], length: int) -> np.ndarray:
    """Top%(i) for i = 1..length: the fraction of `targets` among the first `i` of `order`.

    Past the end of `order` the curve stays at its last value.
    """
    if not targets:
        raise ValueError("the target set is empty")
    tset = set(int(t) for t in targets)
    hits = np.fromiter((1.0 if int(i) in tset else 0.0 for i in order), dtype=np.float64)
    found = np.cumsum(hits) / len(tset)
    out = np.empty(length, dtype=np.float64)
    k = min(length, found.size)
    out[:k] = found[:k]
    out[k:] = found[-1] if found.size else 0.0
    return out


def random_top(n_pool: int, length: int) -> np.ndarray:
    """Random search's expected Top%(i) = i / N for i = 1..length."""
    return np.minimum(np.arange(1, length + 1, dtype=np.float64) / n_pool, 1.0)


def enhancement_curve(curve: np.ndarray, n_pool: int) -> np.ndarray:
    """EF(i) = Top%(i) / (i / N)."""
    return curve / random_top(n_pool, curve.size)


def experiments_to_reach(order: Sequence[int], targets: Sequence[int], level: float) -> int | None:
    """The first `i` with Top%(i) >= level, or `None` if the sequence never gets there."""
    tset = set(int(t) for t in targets)
    need = level * len(tset) - 1e-9
    found = 0
    for i, idx in enumerate(order, start=1):
        if int(idx) in tset:
            found += 1
            if found >= need:
                return i
    return None


def acceleration_factor(steps: Sequence[int | None], n_pool: int, level: float) -> Interval | None:
    """AF(L) = (L * N) / mean experiments to reach L, with the interval mapped from that mean's.

    Returns:
        `None` when any seed did not reach the level (the AF is then "not reached").
    """
    if not steps or any(s is None for s in steps):
        return None
    m = mean_interval([float(s) for s in steps if s is not None])
    need = level * n_pool
    high = need / m.low if m.low > 0 else math.inf
    return Interval(need / m.mean, need / m.high, high, m.n)


def first_hit(order: Sequence[int], hits: Sequence[int]) -> int | None:
    """The number of experiments until the first member of `hits` was measured, or `None`."""
    hset = set(int(h) for h in hits)
    for i, idx in enumerate(order, start=1):
        if int(idx) in hset:
            return i
    return None
