"""Optimizers: pick a q-batch from a discrete pool or from a continuous / mixed box."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from botorch.acquisition import AcquisitionFunction

__all__ = ["optimize_pool", "optimize_box"]


def optimize_pool(
    acqf: AcquisitionFunction,
    choices: torch.Tensor,
    q: int,
    *,
    X_avoid: torch.Tensor | None = None,
    max_batch_size: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequential greedy q-batch over a pool.

    Args:
        acqf: The acquisition function (its `X_pending` already set).
        choices: `N x d` candidate inputs.
        q: Batch size (at most the number of choices not avoided).
        X_avoid: `k x d` inputs never to pick (measured, pending and failed candidates).

    Returns:
        `q` indices into `choices` and their `q` acquisition values (each given the picks before).
    """
    import torch
    from botorch.optim import optimize_acqf_discrete

    X, values = optimize_acqf_discrete(
        acqf, q=q, choices=choices, max_batch_size=max_batch_size, unique=True, X_avoid=X_avoid
    )
    # map picked rows back to their pool indices
    idx = [int(torch.nonzero((choices == x).all(-1))[0, 0]) for x in X]
    return torch.tensor(idx), values.reshape(-1)


def optimize_box(
    acqf: AcquisitionFunction,
    bounds: torch.Tensor,
    q: int,
    *,
    raw_points: torch.Tensor,
    equality_constraints: list[tuple[torch.Tensor, torch.Tensor, float]] | None = None,
    inequality_constraints: list[tuple[torch.Tensor, torch.Tensor, float]] | None = None,
    categorical_blocks: list[tuple[int, int]] | None = None,
    num_restarts: int = 4,
    maxiter: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequential greedy q-batch by gradient ascent from the best of `raw_points`.

    Start points come from the caller's space-filling design (they already meet the
    composition constraints), which avoids BoTorch's polytope sampler; each start keeps its
    one-hot categorical columns fixed, so mixed spaces need no enumeration of combinations.

    Args:
        bounds: `2 x d` bounds of the encoding.
        raw_points: `r x d` feasible points to score and start from.
        equality_constraints: BoTorch `(indices, coefficients, rhs)` equalities.
        inequality_constraints: BoTorch `(indices, coefficients, rhs)`: `sum coef x >= rhs`.
        categorical_blocks: `(start, width)` of each one-hot block.
        num_restarts: Gradient runs per pick, from the best-scoring raw points.

    Returns:
        `q x d` candidates and their `q` acquisition values (each given the picks before).
    """
    import torch
    from botorch.optim import optimize_acqf

    cat_cols = [
        c for start, width in (categorical_blocks or []) for c in range(start, start + width)
    ]
    base = acqf.X_pending
    picks: list[torch.Tensor] = []
    values: list[float] = []
    try:
        for _ in range(q):
            with torch.no_grad():
                scores = acqf(raw_points.unsqueeze(1))
            k = min(num_restarts, raw_points.shape[0])
            starts = raw_points[scores.topk(k).indices]
            best_x, best_v = None, -float("inf")
            if not cat_cols:
                # no one-hot columns to hold per start: one batched L-BFGS run over all starts
                x, v = optimize_acqf(
                    acqf,
                    bounds=bounds,
                    q=1,
                    num_restarts=k,
                    batch_initial_conditions=starts.unsqueeze(1),
                    equality_constraints=equality_constraints or None,
                    inequality_constraints=inequality_constraints or None,
                    options={"maxiter": maxiter},
                    retry_on_optimization_warning=False,
                )
                best_x, best_v = x.detach().reshape(1, -1), float(v)
                starts = starts[:0]
            for x0 in starts:
                fixed = {c: float(x0[c]) for c in cat_cols}
                x, v = optimize_acqf(
                    acqf,
                    bounds=bounds,
                    q=1,
                    num_restarts=1,
                    batch_initial_conditions=x0.reshape(1, 1, -1),
                    equality_constraints=equality_constraints or None,
                    inequality_constraints=inequality_constraints or None,
                    fixed_features=fixed or None,
                    options={"maxiter": maxiter},
                    retry_on_optimization_warning=False,
                )
                if float(v) > best_v:
                    best_x, best_v = x.detach().reshape(1, -1), float(v)
            assert best_x is not None
            picks.append(best_x)
            values.append(best_v)
            done = torch.cat(picks)
            acqf.set_X_pending(done if base is None else torch.cat([base, done]))
    finally:
        acqf.set_X_pending(base)
    return torch.cat(picks), torch.tensor(values, dtype=raw_points.dtype)
