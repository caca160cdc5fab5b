"""Greedy expected hypervolume improvement over a pool of candidates, two objectives.

The hypervolume analogue of the cached-sample greedy in `acquisition.pool`: the pool is
predicted once per round, and for each posterior sample `k` (ensemble member, dropout mask, GP
draw) the Pareto front of the measured, pending and already picked points is kept. A candidate's
value is the mean over samples of the area it adds to that sample's front above the reference
point (zero where it breaks an outcome constraint under that sample), which is the value
BoTorch's `qNoisyExpectedHypervolumeImprovement` gives one new point next to its pending points;
`qLogNoisyExpectedHypervolumeImprovement` takes a smoothed logarithm of the same quantity.
With two objectives the added area is a sum over the front's staircase, `O(front)` per
candidate and sample.
"""

from __future__ import annotations

import math

import torch

__all__ = ["front_2d", "hvi_2d", "ehvi_greedy"]


def front_2d(points: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The non-dominated points of `n x 2` `points` (maximization) strictly above `ref`, sorted
    by the first objective ascending (so the second descends)."""
    P = points[(points > ref).all(dim=-1)]
    if P.shape[0] == 0:
        return P
    P = P[torch.argsort(P[:, 0], descending=True, stable=True)]
    keep = []
    best2 = -math.inf
    for i, y2 in enumerate(P[:, 1].tolist()):
        if y2 > best2:  # nothing with a larger first objective reaches this high
            keep.append(i)
            best2 = y2
    return P[keep].flip(0)


def hvi_2d(Y: torch.Tensor, front: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Hypervolume each row of `n x 2` `Y` adds to a `front_2d` front above `ref`.

    Over `x` from `ref[0]` to `y1`, the front covers heights up to `b_i` on `(a_{i-1}, a_i]`
    (`a_0 = ref[0]`) and up to `ref[1]` beyond `a_m`; the candidate adds `y2` less that.
    """
    y1, y2 = Y[:, 0:1], Y[:, 1:2]
    r1, r2 = float(ref[0]), float(ref[1])
    if front.shape[0] == 0:
        return ((y1 - r1).clamp_min(0) * (y2 - r2).clamp_min(0)).reshape(-1)
    a, b = front[:, 0], front[:, 1]
    a_prev = torch.cat([a.new_tensor([r1]), a[:-1]])
    width = (torch.minimum(y1, a) - a_prev).clamp_min(0)  # n x m
    height = (y2 - b).clamp_min(0)
    tail = (y1 - a[-1]).clamp_min(0) * (y2 - r2).clamp_min(0)
    return (width * height).sum(dim=-1) + tail.reshape(-1)


def ehvi_greedy(
    samples: torch.Tensor,
    feasible: torch.Tensor,
    base: torch.Tensor,
    base_feasible: torch.Tensor,
    ref: torch.Tensor,
    q: int,
    *,
    keys: torch.Tensor | None = None,
    chunk: int = 65536,
) -> tuple[list[int], torch.Tensor]:
    """Sequential greedy batch by expected hypervolume improvement.

    Args:
        samples: `S x N x 2` objective samples of the candidates (maximization).
        feasible: `S x N` whether each candidate meets the outcome constraints per sample.
        base: `S x b x 2` objective samples of the measured and pending points.
        base_feasible: `S x b` their feasibility.
        ref: `2` reference point.
        q: Batch size.
        keys: `N` row keys; candidates sharing a pick's key are not picked again.

    Returns:
        Picked columns and `log` of each pick's expected improvement (given the earlier picks).
    """
    S, N, _ = samples.shape
    points = [base[k][base_feasible[k]] for k in range(S)]
    fronts = [front_2d(p, ref) for p in points]
    taken = torch.zeros(N, dtype=torch.bool)
    picks: list[int] = []
    values: list[float] = []
    for _ in range(q):
        best_v, best_i = -math.inf, -1
        for lo in range(0, N, chunk):
            hv = torch.zeros(min(chunk, N - lo), dtype=samples.dtype)
            for k in range(S):
                gain = hvi_2d(samples[k, lo : lo + chunk], fronts[k], ref)
                hv += torch.where(feasible[k, lo : lo + chunk], gain, torch.zeros_like(gain))
            v = (hv / S).masked_fill(taken[lo : lo + chunk], -math.inf)
            i = int(torch.argmax(v))
            if float(v[i]) > best_v:
                best_v, best_i = float(v[i]), lo + i
        if best_i < 0:
            break
        picks.append(best_i)
        values.append(math.log(best_v) if best_v > 0 else -math.inf)
        taken[best_i] = True
        if keys is not None:
            taken |= keys == keys[best_i]
        for k in range(S):
            if bool(feasible[k, best_i]):
                points[k] = torch.cat([points[k], samples[k, best_i : best_i + 1]])
                fronts[k] = front_2d(points[k], ref)
    return picks, torch.tensor(values, dtype=samples.dtype)
