"""Optimizers: pick a q-batch from a discrete pool or from a continuous / mixed box."""

from __future__ import annotations

import itertools
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
    equality_constraints: list[tuple[torch.Tensor, torch.Tensor, float]] | None = None,
    categorical_blocks: list[tuple[int, int]] | None = None,
    num_restarts: int = 4,
    raw_samples: int = 128,
    max_combinations: int = 32,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient-based q-batch optimization in a box, with one-hot categoricals held fixed.

    Args:
        bounds: `2 x d` bounds of the encoding.
        equality_constraints: BoTorch `(indices, coefficients, rhs)` equalities.
        categorical_blocks: `(start, width)` of each one-hot block; the optimizer enumerates their
            combinations (a random subset of `max_combinations` when there are more).
        seed: Seed for restarts and the choice of combinations.

    Returns:
        `q x d` candidates and their `q` acquisition values.
    """
    import torch
    from botorch.optim import optimize_acqf, optimize_acqf_mixed

    torch.manual_seed(seed)
    options = {"batch_limit": 4, "maxiter": 100}
    if not categorical_blocks:
        X, values = optimize_acqf(
            acqf, bounds=bounds, q=q, num_restarts=num_restarts, raw_samples=raw_samples,
            equality_constraints=equality_constraints or None, sequential=True, options=options,
        )
        return X.detach(), values.detach().reshape(-1)
    combos = list(itertools.product(*[range(w) for _, w in categorical_blocks]))
    if len(combos) > max_combinations:
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(combos), generator=g)[:max_combinations].tolist()
        combos = [combos[i] for i in pick]
    fixed = []
    for combo in combos:
        ff: dict[int, float] = {}
        for (start, width), choice in zip(categorical_blocks, combo):
            for k in range(width):
                ff[start + k] = 1.0 if k == choice else 0.0
        fixed.append(ff)
    X, _ = optimize_acqf_mixed(
        acqf, bounds=bounds, q=q, num_restarts=num_restarts, raw_samples=raw_samples,
        fixed_features_list=fixed, equality_constraints=equality_constraints or None,
        options=options,
    )
    X = X.detach()
    # value of each pick given the ones before it, as the sequential path reports
    values = []
    base = acqf.X_pending
    with torch.no_grad():
        for i in range(X.shape[0]):
            values.append(float(acqf(X[i : i + 1].unsqueeze(0))))
            prev = X[: i + 1]
            acqf.set_X_pending(prev if base is None else torch.cat([base, prev]))
    acqf.set_X_pending(base)
    return X, torch.tensor(values, dtype=X.dtype)
