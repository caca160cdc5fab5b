"""Batch selection from large candidate pools on a cached sample matrix.

BoTorch's sequential greedy `optimize_acqf_discrete` evaluates the whole pool through the model
and the full q-batch Monte Carlo machinery once per pick. For the acquisitions the planner uses,
a q-batch value is built from per-point, per-sample utilities (log improvement plus log
feasibility for qLogEI and qLogNEI, the upper-bound term for qUCB) that are then reduced over the
batch (a smooth or hard maximum) and over the samples (a log-mean or a mean). So the pool is
predicted once, the per-point utilities are kept as an `S x N` matrix, and each greedy pick only
re-runs the two reductions over `[candidate, pending..., picks...]`: in O(1) per candidate from
a summary of the batch so far (`_fatmax_extend`), and only for the candidates whose cheap bounds
(`_fatmax_bounds`) do not rule them out. `explore` and `thompson` work on the same cached samples
(`acquisition.explore`), and so does two-objective hypervolume improvement on ensembles
(`acquisition.hypervolume`).

Where the samples come from:
- ensembles and MC dropout (`EnsembleModel`): the members' predictions, each member once. This is
  exactly what BoTorch computes with a sampler that uses each member once, so the picks are the
  same as `optimize_acqf_discrete` (see `optimize_pool`, kept as the reference).
- Gaussian processes: joint posterior samples over the measured points, the pending points and a
  shortlist of the pool (the candidates with the highest marginal upper bound `mean + 3 sd`, or
  the highest sd for `explore`, from exact marginals computed in chunks with a cached Cholesky
  factor, `gp_marginals`). No `N x N` covariance is ever formed; the
  joint covariance is over `n + p + M` points (`M` = `shortlist`, default 1024 or 64 q).

The pool is given as an iterable of encoded chunks, so a pool larger than memory is streamed:
what is kept is `S` doubles and one int64 row key per candidate (and nothing of the inputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from botorch.acquisition import AcquisitionFunction
    from botorch.models.model import Model

__all__ = [
    "PoolSelection",
    "select_from_pool",
    "sample_criterion",
    "greedy_on_utilities",
    "UnsupportedPoolAcquisition",
    "DEFAULT_CHUNK",
    "distinct_rows",
]

#: Candidates predicted per model call; bounds the memory of one pass.
DEFAULT_CHUNK = 16384
#: Joint posterior samples drawn for a GP over its shortlist.
GP_SAMPLES = 256


class UnsupportedPoolAcquisition(TypeError):
    """The acquisition function's q-batch value is not built from per-point utilities."""


@dataclass
class SampleCriterion:
    """How an acquisition scores a batch from joint posterior samples.

    Attributes:
        pointwise: `S x n x m` samples (and the `S x b x m` baseline samples, for NEI) to
            `S x n` per-point utilities.
        reduce: `S x c x t` utilities of `c` batches of `t` points to `c` batch values.
        extend: `(ctx, a)` -> `reduce([a_c, ctx...])` for `S x t` context utilities and `S x b`
            candidates, without forming the `S x b x (t + 1)` tensor (same value up to rounding);
            `None` where only `reduce` exists.
    """

    pointwise: Callable[[torch.Tensor], torch.Tensor]
    reduce: Callable[[torch.Tensor], torch.Tensor]
    extend: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    bounds: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None


@dataclass
class PoolSelection:
    """The picks of one round.

    Attributes:
        indices: Pool positions (in the order of the chunks) of the `q` picks, in pick order.
        values: The acquisition value of each pick given the pending points and picks before it.
        n_pool: Candidates seen.
        n_scored: Candidates scored by the batch criterion (the GP shortlist, else all).
        samples: Posterior samples per candidate (members, masks or GP draws).
    """

    indices: list[int]
    values: torch.Tensor
    n_pool: int
    n_scored: int
    samples: int


def sample_criterion(
    acqf: AcquisitionFunction, baseline_samples: torch.Tensor | None = None
) -> SampleCriterion:
    """The per-point utilities and reductions of a BoTorch acquisition function.

    Supported: `qLogExpectedImprovement`, `qLogNoisyExpectedImprovement` (non-incremental),
    `qUpperConfidenceBound`, with their objectives and outcome constraints.

    Args:
        acqf: The acquisition function (its settings: objective, constraints, temperatures).
        baseline_samples: `S x n x m` samples at `acqf.X_baseline` drawn jointly with the pool's
            samples (qLogNEI only).
    """
    import torch
    from botorch.acquisition.logei import (
        qLogExpectedImprovement,
        qLogNoisyExpectedImprovement,
    )
    from botorch.acquisition.monte_carlo import qUpperConfidenceBound
    from botorch.acquisition.utils import compute_best_feasible_objective
    from botorch.utils.objective import compute_smoothed_feasibility_indicator
    from botorch.utils.safe_math import fatmax, log_fatplus, log_softplus, logmeanexp, smooth_amax

    def objective(Z: torch.Tensor) -> torch.Tensor:
        return acqf.objective(Z, X=None)

    if isinstance(acqf, (qLogExpectedImprovement, qLogNoisyExpectedImprovement)):
        if isinstance(acqf, qLogNoisyExpectedImprovement):
            if getattr(acqf, "incremental", False):
                raise UnsupportedPoolAcquisition(
                    "qLogNoisyExpectedImprovement with incremental=True drops pending points "
                    "during greedy selection; build it with incremental=False"
                )
            if baseline_samples is None:
                raise ValueError("qLogNEI needs samples at its X_baseline")
            # when no baseline point is feasible under some sample, BoTorch scores infeasible
            # points by a lower bound estimated at random points of the global generator: seed
            # it here so a round is reproducible
            with torch.random.fork_rng():
                torch.manual_seed(0)
                best = compute_best_feasible_objective(
                    samples=baseline_samples,
                    obj=objective(baseline_samples),
                    constraints=acqf._constraints,
                    model=acqf.model,
                    objective=acqf.objective,
                    X_baseline=acqf.X_baseline,
                ).reshape(-1, 1)
        else:
            best = acqf.best_f.reshape(-1)
        clamp = log_fatplus if acqf._fat else log_softplus
        constraints = acqf._constraints

        def pointwise(Z: torch.Tensor) -> torch.Tensor:
            u = clamp(objective(Z) - best.to(Z), tau=acqf.tau_relu)
            if constraints:
                u = u + compute_smoothed_feasibility_indicator(
                    constraints=constraints, samples=Z, eta=acqf._eta, log=True, fat=acqf._fat
                )
            return u

        q_max = fatmax if acqf._fat else smooth_amax

        def reduce(A: torch.Tensor) -> torch.Tensor:
            return logmeanexp(q_max(A, dim=-1, tau=acqf.tau_max), dim=0)

        tau = float(acqf.tau_max)

        def extend(ctx: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            return logmeanexp(_fatmax_extend(ctx, a, tau), dim=0)

        def bounds(ctx: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            lo, hi = _fatmax_bounds(ctx, a, tau)
            return logmeanexp(lo, dim=0), logmeanexp(hi, dim=0)

        if not acqf._fat:
            return SampleCriterion(pointwise, reduce)
        return SampleCriterion(pointwise, reduce, extend, bounds)

    if isinstance(acqf, qUpperConfidenceBound):
        if acqf._constraints:
            raise UnsupportedPoolAcquisition("qUCB takes constraints through its objective")
        beta_prime = float(acqf.beta_prime)

        def ucb_pointwise(Z: torch.Tensor) -> torch.Tensor:
            obj = objective(Z)
            mean = obj.mean(dim=0)
            return mean + beta_prime * (obj - mean).abs()

        def ucb_reduce(A: torch.Tensor) -> torch.Tensor:
            return A.amax(dim=-1).mean(dim=0)

        def ucb_extend(ctx: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            if ctx.shape[1] == 0:
                return a.mean(dim=0)
            return torch.maximum(a, ctx.amax(dim=1, keepdim=True)).mean(dim=0)

        return SampleCriterion(ucb_pointwise, ucb_reduce, ucb_extend)

    raise UnsupportedPoolAcquisition(
        f"{type(acqf).__name__} has no cached-sample pool path; use optimize_pool"
    )


def _fatmax_extend(ctx: torch.Tensor, a: torch.Tensor, tau: float) -> torch.Tensor:
    """BoTorch's `fatmax` over `[a_c, ctx...]` per sample: `S x b` values for `S x t` context.

    With `M` and `P = sum_i pareto((M - x_i) / tau)` of the context, a candidate at or below
    `M` gives `M + tau log(P + pareto((M - a) / tau))` in O(1); only (sample, candidate) pairs
    above `M` need the O(t) sum `a + tau log(1 + sum_i pareto((a - x_i) / tau))`.
    """
    import torch
    from botorch.utils.safe_math import ALPHA, _pareto

    if ctx.shape[1] == 0:
        return a.clone()  # fatmax of one value is the value
    if not (bool(torch.isfinite(ctx).all()) and bool(torch.isfinite(a).all())):
        from botorch.utils.safe_math import fatmax

        t = ctx.shape[1]
        batch = torch.cat([a.unsqueeze(-1), ctx.unsqueeze(1).expand(-1, a.shape[1], t)], -1)
        return fatmax(batch, dim=-1, tau=tau)
    M = ctx.amax(dim=1, keepdim=True)  # S x 1
    P = _pareto((M - ctx) / tau, alpha=ALPHA, check=False).sum(dim=1, keepdim=True)
    below = a <= M
    out = M + tau * torch.log(P + _pareto(((M - a) / tau).clamp_min(0), alpha=ALPHA, check=False))
    if not bool(below.all()):
        k, c = torch.nonzero(~below, as_tuple=True)
        v = a[k, c]
        terms = _pareto((v.unsqueeze(-1) - ctx[k]) / tau, alpha=ALPHA, check=False).sum(-1)
        out[k, c] = v + tau * torch.log1p(terms)
    return out


def _survivors(
    bounds: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    ctx: torch.Tensor,
    A: torch.Tensor,
    taken: torch.Tensor,
    chunk: int,
) -> torch.Tensor:
    """Columns whose upper bound reaches the best lower bound (in pool order)."""
    import torch

    N = A.shape[1]
    los, his = [], []
    for lo in range(0, N, chunk):
        lo_v, hi_v = bounds(ctx, A[:, lo : lo + chunk])
        off = taken[lo : lo + chunk]
        los.append(lo_v.masked_fill(off, -math.inf))
        his.append(hi_v.masked_fill(off, -math.inf))
    low, high = torch.cat(los), torch.cat(his)
    floor = float(low.max()) if N else -math.inf
    floor -= 1e-9 * (1.0 + abs(floor))  # rounding must never drop the best candidate
    return torch.nonzero((high >= floor) & (high > -math.inf)).reshape(-1)


def _fatmax_bounds(
    ctx: torch.Tensor, a: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample bounds on `_fatmax_extend`, exact where `a` is at most the context's maximum
    `M`; above it the sum over the context lies between its largest term,
    `pareto((a - M) / tau)`, and `t` times that (every term is at most the largest)."""
    import torch
    from botorch.utils.safe_math import ALPHA, _pareto

    t = ctx.shape[1]
    M = ctx.amax(dim=1, keepdim=True)
    P = _pareto((M - ctx) / tau, alpha=ALPHA, check=False).sum(dim=1, keepdim=True)
    below = a <= M
    exact = M + tau * torch.log(P + _pareto(((M - a) / tau).clamp_min(0), alpha=ALPHA, check=False))
    top = _pareto(((a - M) / tau).clamp_min(0), alpha=ALPHA, check=False)
    lo = torch.where(below, exact, a + tau * torch.log1p(top))
    hi = torch.where(below, exact, a + tau * torch.log1p(t * top))
    if not (bool(torch.isfinite(ctx).all()) and bool(torch.isfinite(a).all())):
        return torch.full_like(a, -math.inf), torch.full_like(a, math.inf)
    return lo, hi


def greedy_on_utilities(
    reduce: Callable[[torch.Tensor], torch.Tensor],
    A: torch.Tensor,
    q: int,
    *,
    fixed: torch.Tensor | None = None,
    eligible: torch.Tensor | None = None,
    keys: torch.Tensor | None = None,
    extend: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    bounds: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    chunk: int = 65536,
) -> tuple[list[int], torch.Tensor]:
    """Sequential greedy batch on an `S x N` utility matrix.

    Pick `j` maximizes `reduce([a_c, fixed..., picks...])` over the candidates `c` not yet
    picked, as `optimize_acqf_discrete` does. Exact ties (common for qUCB on a few ensemble
    members, where once a member's maximum is in the batch many candidates add nothing) go to
    the candidate with the best value on its own; `optimize_acqf_discrete` takes the first in
    pool order there.

    Args:
        reduce: `S x c x t` utilities to `c` batch values.
        A: `S x N` utilities of the candidates.
        fixed: `S x p` utilities of the pending points (part of every batch).
        eligible: `N` booleans; only these may be picked (default all).
        keys: `N` row keys (`row_keys`); candidates sharing a pick's key are not picked again.

    Returns:
        The `q` picked columns and their values.
    """
    import torch

    S, N = A.shape
    taken = torch.zeros(N, dtype=torch.bool) if eligible is None else ~eligible.clone()
    ctx = fixed if fixed is not None else A.new_zeros(S, 0)
    picks: list[int] = []
    values: list[float] = []
    for _ in range(q):
        best = (-math.inf, -math.inf)  # (batch value, own value) of the best so far
        best_i = -1
        t = ctx.shape[1]
        cols = None  # candidates worth an exact value: all, or those the bounds cannot rule out
        if bounds is not None and t > 0:
            cols = _survivors(bounds, ctx, A, taken, chunk)
        n_cols = N if cols is None else int(cols.numel())
        for lo in range(0, n_cols, chunk):
            idx = None if cols is None else cols[lo : lo + chunk]
            a = A[:, lo : lo + chunk] if idx is None else A[:, idx]
            b = a.shape[1]
            if extend is not None:
                v = extend(ctx, a)
            else:
                batch = torch.cat([a.unsqueeze(-1), ctx.unsqueeze(1).expand(S, b, t)], dim=-1)
                v = reduce(batch)
            v = v.masked_fill(taken[lo : lo + b] if idx is None else taken[idx], -math.inf)
            top = float(v.max()) if b else -math.inf
            if top == -math.inf or top < best[0]:
                continue
            ties = torch.nonzero(v == top).reshape(-1)
            i = int(ties[0])
            if ties.numel() > 1:
                # several candidates add the same to the batch (qUCB once one sample's maximum
                # is set, say): take the best on its own rather than the first in pool order
                own = reduce(a[:, ties].unsqueeze(-1))
                i = int(ties[int(torch.argmax(own))])
            own_i = float(reduce(a[:, i : i + 1].unsqueeze(-1)))
            if top > best[0] or own_i > best[1]:
                best = (top, own_i)
                best_i = lo + i if idx is None else int(idx[i])
        if best_i < 0:
            break  # nothing left to pick
        picks.append(best_i)
        values.append(best[0])
        taken[best_i] = True
        if keys is not None:
            taken |= keys == keys[best_i]
        ctx = torch.cat([ctx, A[:, best_i : best_i + 1]], dim=1)
    return picks, torch.tensor(values, dtype=A.dtype)


def _is_ensemble(model: Model) -> bool:
    from botorch.models.ensemble import EnsembleModel

    return isinstance(model, EnsembleModel)


def member_samples(model: Model, X: torch.Tensor) -> torch.Tensor:
    """`K x n x m` member predictions of an ensemble model at `n x d` inputs (float64)."""
    import torch

    with torch.no_grad():
        return model(X.double()).double()


def select_from_pool(
    acqf: AcquisitionFunction,
    model: Model,
    chunks: Iterable[torch.Tensor],
    q: int,
    *,
    X_pending: torch.Tensor | None = None,
    shortlist: int | None = None,
    seed: int = 0,
) -> PoolSelection:
    """Pick `q` candidates from a streamed pool by sequential greedy on cached samples.

    Args:
        acqf: qLogEI, qLogNEI (non-incremental), qUCB, `qPosteriorVariance` or
            `ThompsonSampling`; its own `X_pending` is ignored in favour of `X_pending` here.
        model: The model `acqf` was built on.
        chunks: The pool as encoded `b x d` chunks, in order.
        q: Batch size.
        X_pending: `p x d` inputs proposed but not measured (they share every batch).
        shortlist: GP only: candidates scored jointly (default `max(1024, 64 q)`).
        seed: Seed of the GP's joint samples.
    """
    import torch

    from acquisition.explore import ThompsonSampling, qPosteriorVariance

    if _is_ensemble(model) and _two_objective_hv(acqf):
        return _select_hv(acqf, model, chunks, q, X_pending)
    if isinstance(acqf, qPosteriorVariance):
        kind = "explore"
    elif isinstance(acqf, ThompsonSampling):
        kind = "thompson"
    else:
        kind = "mc"
        _check_supported(acqf)
    Xb = _baseline(acqf) if kind == "mc" else None
    if _is_ensemble(model):
        Zb = member_samples(model, Xb) if Xb is not None else None
        Zp = member_samples(model, X_pending) if X_pending is not None else None
        index = None
        transform, crit = _transform(acqf, kind, Zb)
        parts, key_parts = [], []
        for X in chunks:
            parts.append(transform(member_samples(model, X)))
            key_parts.append(row_keys(X))
        A = torch.cat(parts, dim=1) if parts else torch.zeros(0, 0, dtype=torch.double)
        keys = torch.cat(key_parts) if key_parts else torch.zeros(0, dtype=torch.long)
        n_pool = A.shape[1]
    else:
        score = marginal_sd if kind == "explore" else marginal_upper_bounds
        index, top_X, n_pool = _shortlist(model, chunks, score, shortlist or max(1024, 64 * q))
        if n_pool == 0:
            return PoolSelection([], torch.zeros(0, dtype=torch.double), 0, 0, 0)
        keys = row_keys(top_X)
        Zb, Zp, Zc = _joint_samples(model, Xb, X_pending, top_X, seed)
        transform, crit = _transform(acqf, kind, Zb)
        A = transform(Zc)
    q = min(q, A.shape[1])
    fixed = transform(Zp) if Zp is not None else None
    if crit is not None:
        picks, values = greedy_on_utilities(
            crit.reduce, A, q, fixed=fixed, keys=keys, extend=crit.extend, bounds=crit.bounds
        )
    elif kind == "explore":
        from acquisition.explore import residual_variance_greedy

        picks, values = residual_variance_greedy(A, q, noise=acqf.noise, pending=fixed, keys=keys)
    else:
        picks, values = _thompson_picks(acqf, A, q, keys)
    if index is not None:
        picks = [int(index[i]) for i in picks]
    return PoolSelection(picks, values, n_pool, A.shape[1], A.shape[0])


def distinct_rows(choices: torch.Tensor, avoid: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the rows of `choices` to keep: the first of each set of equal rows, and none
    equal to a row of `avoid` (measured and pending inputs). Two pool entries with the same
    encoding (`Fe2O3` and `Fe4O6`) are one experiment to the model."""
    import torch

    n = choices.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    rows = choices if avoid is None else torch.cat([avoid.to(choices), choices])
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), rows.shape[0], dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(rows.shape[0]), reduce="amin")
    offset = rows.shape[0] - n
    ids = inverse[offset:]
    keep = first[ids] == torch.arange(offset, rows.shape[0])
    return torch.nonzero(keep).reshape(-1)


def row_keys(X: torch.Tensor) -> torch.Tensor:
    """An `int64` key per row of `X`, equal for equal rows (as float64 bits), whatever the
    chunking: a weighted sum of the rows' bit patterns in wrapping integer arithmetic."""
    import torch

    bits = X.double().contiguous().view(torch.int64)
    g = torch.Generator().manual_seed(12345)
    w = torch.randint(1, 2**62, (X.shape[-1],), generator=g, dtype=torch.int64) | 1
    return (bits * w).sum(dim=-1)


def _two_objective_hv(acqf: AcquisitionFunction) -> bool:
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement,
    )
    from botorch.acquisition.multi_objective.monte_carlo import (
        qNoisyExpectedHypervolumeImprovement,
    )

    hv_types = (qLogNoisyExpectedHypervolumeImprovement, qNoisyExpectedHypervolumeImprovement)
    return isinstance(acqf, hv_types) and int(acqf.ref_point.numel()) == 2


def _select_hv(
    acqf: AcquisitionFunction,
    model: Model,
    chunks: Iterable[torch.Tensor],
    q: int,
    X_pending: torch.Tensor | None,
) -> PoolSelection:
    """Two objectives on an ensemble: greedy expected hypervolume improvement on cached member
    predictions (`acquisition.hypervolume`)."""
    import torch

    from acquisition.hypervolume import ehvi_greedy

    cons = list(acqf.constraints or [])

    def split(Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obj = acqf.objective(Z, X=None)  # S x n x 2
        ok = torch.ones(obj.shape[:-1], dtype=torch.bool)
        for c in cons:
            ok &= c(Z) <= 0
        return obj, ok

    parts, oks, key_parts = [], [], []
    for X in chunks:
        o, ok = split(member_samples(model, X))
        parts.append(o)
        oks.append(ok)
        key_parts.append(row_keys(X))
    if not parts:
        return PoolSelection([], torch.zeros(0, dtype=torch.double), 0, 0, 0)
    objs, feas, keys = torch.cat(parts, dim=1), torch.cat(oks, dim=1), torch.cat(key_parts)
    Xb = acqf.X_baseline if X_pending is None else torch.cat([acqf.X_baseline, X_pending])
    base, base_ok = split(member_samples(model, Xb))
    ref = acqf.ref_point.to(objs)
    picks, values = ehvi_greedy(objs, feas, base, base_ok, ref, min(q, objs.shape[1]), keys=keys)
    return PoolSelection(picks, values, objs.shape[1], objs.shape[1], objs.shape[0])


def _check_supported(acqf: AcquisitionFunction) -> None:
    from botorch.acquisition.logei import (
        qLogExpectedImprovement,
        qLogNoisyExpectedImprovement,
    )
    from botorch.acquisition.monte_carlo import qUpperConfidenceBound

    if not isinstance(
        acqf, (qLogExpectedImprovement, qLogNoisyExpectedImprovement, qUpperConfidenceBound)
    ):
        raise UnsupportedPoolAcquisition(
            f"{type(acqf).__name__} has no cached-sample pool path; use optimize_pool"
        )


def _transform(
    acqf: AcquisitionFunction, kind: str, Zb: torch.Tensor | None
) -> tuple[Callable[[torch.Tensor], torch.Tensor], SampleCriterion | None]:
    """`S x n x m` samples to the `S x n` matrix the greedy step works on, and for the MC
    acquisitions the criterion whose reductions that step runs."""
    if kind == "mc":
        crit = sample_criterion(acqf, Zb)
        return crit.pointwise, crit
    if kind == "explore":
        return (lambda Z: acqf.objective(Z, X=None)), None
    return acqf.utility, None


def _thompson_picks(
    acqf: AcquisitionFunction, U: torch.Tensor, q: int, keys: torch.Tensor
) -> tuple[list[int], torch.Tensor]:
    """Slot `k` takes the best candidate not yet picked under sample `sample_index(k)`."""
    import torch

    S, N = U.shape
    taken = torch.zeros(N, dtype=torch.bool)
    picks: list[int] = []
    values: list[float] = []
    for j in range(q):
        k = acqf.sample_index(acqf.slot + j, S)  # type: ignore[operator]
        u = U[k].masked_fill(taken, -math.inf)
        i = int(torch.argmax(u))
        picks.append(i)
        values.append(float(u[i]))
        taken[i] = True
        taken |= keys == keys[i]
    return picks, torch.tensor(values, dtype=U.dtype)


def _baseline(acqf: AcquisitionFunction) -> torch.Tensor | None:
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement

    if isinstance(acqf, qLogNoisyExpectedImprovement):
        return acqf.X_baseline
    return None


def marginal_upper_bounds(model: Model, X: torch.Tensor, k: float = 3.0) -> torch.Tensor:
    """`mean + k sd` of output 0 (the objective) at `n x d` inputs."""
    mean, var = _marginals(model, X)
    return mean + k * var.clamp_min(0).sqrt()


def _marginals(model: Model, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Marginal mean and variance of output 0 at `n x d` inputs.

    A GP's `posterior` over a chunk forms the chunk's joint covariance (or, in t-batch mode,
    a kernel over the training points and each test point), so exact GPs get the textbook
    marginals from a cached Cholesky factor instead (`gp_marginals`); other models go through
    `posterior` one point per t-batch."""
    import torch

    with torch.no_grad():
        fast = gp_marginals(model, X)
        if fast is not None:
            return fast[0][:, 0], fast[1][:, 0]
        post = model.posterior(X.double().unsqueeze(-2))  # n x 1 x m
        return post.mean[..., 0, 0], post.variance[..., 0, 0]


def gp_marginals(model: Model, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`n x m` marginal means and variances of a BoTorch `SingleTaskGP` (one or several
    outputs, input and outcome transforms applied) at `n x d` inputs, in `O(n_train n)` memory:
    `mean = m(x) + k(x, X) alpha`, `var = k(x, x) - |L^-1 k(X, x)|^2`, latent (no noise), as
    `posterior` gives. None for other models."""
    import torch
    from botorch.models import SingleTaskGP

    if not isinstance(model, SingleTaskGP) or model.training:
        return None
    cache = getattr(model, "_loop_marginal_cache", None)
    Xtr = model.train_inputs[0]
    if cache is None or cache[0] is not Xtr:
        ytr = model.train_targets
        K = model.covar_module(Xtr).to_dense()
        noise = model.likelihood.noise
        n = Xtr.shape[-2]
        noise = noise.expand(*K.shape[:-2], n) if noise.shape[-1] != n else noise
        K = K + torch.diag_embed(noise.reshape(*K.shape[:-2], n))
        L = torch.linalg.cholesky(K + 1e-9 * torch.eye(n, dtype=K.dtype))
        resid = ytr - model.mean_module(Xtr)
        alpha = torch.cholesky_solve(resid.unsqueeze(-1), L)
        cache = (Xtr, L, alpha)
        model._loop_marginal_cache = cache  # type: ignore[attr-defined]
    _, L, alpha = cache
    Xt = model.transform_inputs(X.double())
    if Xtr.dim() == 3:  # several outputs: a batch of GPs over the same inputs
        Xt = Xt.unsqueeze(0).expand(Xtr.shape[0], *Xt.shape)
    Ks = model.covar_module(Xtr, Xt).to_dense()  # (m x) n_train x n
    mean = model.mean_module(Xt) + (Ks * alpha).sum(-2)
    v = torch.linalg.solve_triangular(L, Ks, upper=False)
    var = model.covar_module(Xt, diag=True) - (v * v).sum(-2)
    mean = mean.reshape(-1, X.shape[0]).T  # n x m
    var = var.reshape(-1, X.shape[0]).T.clamp_min(0)
    tf = getattr(model, "outcome_transform", None)
    if tf is not None:
        mean, var = tf.untransform(mean, var)
    return mean, var


def marginal_sd(model: Model, X: torch.Tensor) -> torch.Tensor:
    """Posterior standard deviation of output 0 at `n x d` inputs."""
    return _marginals(model, X)[1].clamp_min(0).sqrt()


def _shortlist(
    model: Model,
    chunks: Iterable[torch.Tensor],
    score: Callable[[Model, torch.Tensor], torch.Tensor],
    M: int,
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """The `M` best candidates by a marginal score, streamed: `(pool indices, inputs, N)`."""
    import torch

    top_score = torch.empty(0, dtype=torch.double)
    top_idx = torch.empty(0, dtype=torch.long)
    top_X: torch.Tensor | None = None
    n = 0
    for X in chunks:
        s = score(model, X)
        idx = torch.arange(n, n + X.shape[0])
        n += X.shape[0]
        sc = torch.cat([top_score, s])
        allidx = torch.cat([top_idx, idx])
        allX = X.double() if top_X is None else torch.cat([top_X, X.double()])
        keep = torch.topk(sc, min(M, sc.numel())).indices
        keep = keep[torch.argsort(allidx[keep])]  # pool order, so ties break as a full scan
        top_score, top_idx, top_X = sc[keep], allidx[keep], allX[keep]
    if top_X is not None:
        # equal inputs would get slightly different joint samples (jitter): keep the first
        keep = distinct_rows(top_X)
        top_idx, top_X = top_idx[keep], top_X[keep]
    return top_idx, top_X, n


def _joint_samples(
    model: Model,
    Xb: torch.Tensor | None,
    Xp: torch.Tensor | None,
    Xc: torch.Tensor | None,
    seed: int,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """Joint posterior samples over baseline, pending and shortlisted points (GP path)."""
    import torch
    from botorch.sampling import SobolQMCNormalSampler

    parts = [x for x in (Xb, Xp, Xc) if x is not None]
    sizes = [x.shape[0] for x in parts]
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([GP_SAMPLES]), seed=seed)
    with torch.no_grad():
        Z = sampler(model.posterior(torch.cat(parts).double()))  # S x (b + p + M) x m
    split = list(Z.split(sizes, dim=1))
    Zb = split.pop(0) if Xb is not None else None
    Zp = split.pop(0) if Xp is not None else None
    return Zb, Zp, split.pop(0)
