"""Pending points are never re-proposed: qLogNEI keeps X_pending through greedy batch picks."""

from __future__ import annotations

import torch

from acquisition import AcquisitionContext, build_acquisition, optimize_pool
from acquisition.registry import UnknownAcquisitionError, check_acquisition
from surrogates import load_builtin, make_surrogate

load_builtin()


def _fitted() -> tuple[object, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    X = torch.rand(12, 1, generator=g, dtype=torch.double)
    Y = -((X - 0.7) ** 2) * 10
    bounds = torch.tensor([[0.0], [1.0]], dtype=torch.double)
    res = make_surrogate("gp").fit(X, Y, bounds=bounds)
    pool = torch.linspace(0, 1, 101, dtype=torch.double).unsqueeze(-1)
    return res.model, X, Y, pool


def test_pending_best_candidate_is_not_picked_again() -> None:
    model, X, Y, pool = _fitted()
    acqf = build_acquisition("qlognei", model, AcquisitionContext(X_baseline=X, Y=Y, seed=0))
    (first,), _ = optimize_pool(acqf, pool, 1)
    pending = pool[int(first)].unsqueeze(0)
    acqf = build_acquisition(
        "qlognei", model, AcquisitionContext(X_baseline=X, Y=Y, X_pending=pending, seed=0)
    )
    idx, values = optimize_pool(acqf, pool, 4)
    assert int(first) not in idx.tolist()
    assert len(set(idx.tolist())) == 4
    assert torch.isfinite(values).all()


def test_acquisition_names_and_options_are_checked() -> None:
    for name in ("qlognei", "qlogei", "qucb"):
        check_acquisition(name)
    try:
        check_acquisition("ei")
    except UnknownAcquisitionError as err:
        assert "qlognei" in str(err)
    else:
        raise AssertionError("no error")
    try:
        check_acquisition("qucb", {"betta": 1})
    except UnknownAcquisitionError as err:
        assert "beta" in str(err)
    else:
        raise AssertionError("no error")


def test_qucb_respects_outcome_constraints() -> None:
    # objective x and a constrained outcome x (upper 0.5) on [0, 1]: without the constraint
    # UCB wants the right end; with it, a candidate inside the feasible half
    from surrogates.gp import GPSurrogate

    X = torch.linspace(0, 1, 9, dtype=torch.double).unsqueeze(-1)
    Y = torch.cat([X, X], dim=-1)
    bounds = torch.tensor([[0.0], [1.0]], dtype=torch.double)
    model = GPSurrogate().fit(X, Y, bounds=bounds, seed=0).model
    pool = torch.linspace(0.01, 0.99, 50, dtype=torch.double).unsqueeze(-1)
    free = build_acquisition("qucb", model, AcquisitionContext(X_baseline=X, Y=Y, seed=0))
    idx, _ = optimize_pool(free, pool, 1)
    assert float(pool[idx[0], 0]) > 0.9
    ctx = AcquisitionContext(X_baseline=X, Y=Y, constraints=[(1, None, 0.5)], seed=0)
    idx, _ = optimize_pool(build_acquisition("qucb", model, ctx), pool, 1)
    assert 0.3 < float(pool[idx[0], 0]) <= 0.5
