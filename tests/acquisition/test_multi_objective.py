"""Several objectives: hypervolume improvement, its reference point, and refusing
single-objective acquisitions."""

from __future__ import annotations

import pytest
import torch

from acquisition import AcquisitionContext, build_acquisition, optimize_pool
from acquisition.registry import UnknownAcquisitionError, reference_point
from surrogates import load_builtin, make_surrogate

load_builtin()


def _ctx(**kw: object) -> AcquisitionContext:
    X = torch.linspace(0, 1, 8, dtype=torch.double).unsqueeze(-1)
    # two objectives in maximization sense that trade off, and a constrained outcome
    Y = torch.cat([X, -(X**2), X], dim=-1)
    return AcquisitionContext(X_baseline=X, Y=Y, n_objectives=2, **kw)  # type: ignore[arg-type]


def test_reference_point_from_the_spec_or_the_front() -> None:
    ctx = _ctx()
    inferred = reference_point(ctx)
    # below the front's nadir (0, -1) on both objectives
    assert inferred[0] < 0.0 and inferred[1] < -1.0
    assert reference_point(_ctx(ref_point=[-0.5, None]))[0] == -0.5
    assert reference_point(_ctx(ref_point=[-0.5, None]))[1] == pytest.approx(inferred[1])
    # only feasible points make the front: x <= 0.5 leaves (0.43, -0.18) as the strongest
    cons = reference_point(_ctx(constraints=[(2, None, 0.5)]))
    assert cons[1] > inferred[1]


def test_hypervolume_batches_and_single_objective_refusal() -> None:
    ctx = _ctx(constraints=[(2, None, 0.9)])
    bounds = torch.tensor([[0.0], [1.0]], dtype=torch.double)
    model = make_surrogate("gp").fit(ctx.X_baseline, ctx.Y, bounds=bounds, seed=0).model
    pool = torch.linspace(0.01, 0.99, 40, dtype=torch.double).unsqueeze(-1)
    idx, values = optimize_pool(build_acquisition("qlognehvi", model, ctx), pool, 3)
    assert len(set(idx.tolist())) == 3 and torch.isfinite(values).all()
    with pytest.raises(UnknownAcquisitionError, match="qlognehvi"):
        build_acquisition("qucb", model, ctx)


@pytest.mark.parametrize("pending", [False, True])
def test_two_objective_pool_greedy_matches_botorch_nehvi(pending: bool) -> None:
    import warnings

    from botorch.acquisition.multi_objective.monte_carlo import (
        qNoisyExpectedHypervolumeImprovement,
    )
    from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective

    from acquisition import select_from_pool
    from acquisition.registry import _sampler

    g = torch.Generator().manual_seed(0)
    X = torch.rand(30, 3, generator=g, dtype=torch.double)
    Y = torch.stack([X[:, 0] + 0.3 * X[:, 2], 1 - X[:, 0] ** 2 + 0.2 * X[:, 1]], -1)
    bounds = torch.stack([torch.zeros(3), torch.ones(3)]).double()
    opts = {"members": 4, "hidden": [32, 32], "epochs": 40}
    model = make_surrogate("ensemble", opts).fit(X, Y, bounds=bounds, seed=0).model
    pool = torch.rand(500, 3, generator=g, dtype=torch.double)
    P = pool[:2] if pending else None
    ctx = AcquisitionContext(X_baseline=X, Y=Y, X_pending=P, n_objectives=2, seed=0)
    ref = torch.tensor(reference_point(ctx), dtype=torch.double)

    def nehvi() -> qNoisyExpectedHypervolumeImprovement:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return qNoisyExpectedHypervolumeImprovement(
                model=model,
                ref_point=ref,
                X_baseline=X,
                sampler=_sampler(model, ctx, {}),
                objective=IdentityMCMultiOutputObjective(outcomes=[0, 1]),
                X_pending=P,
            )

    idx, vals = optimize_pool(nehvi(), pool[2:], 4)
    sel = select_from_pool(nehvi(), model, pool[2:].split(100), 4, X_pending=P)
    assert sel.indices == idx.tolist()
    assert torch.allclose(sel.values, vals.log(), atol=1e-5)
    # the planner's own acquisition (the log version) takes the same greedy path on pools
    mine = select_from_pool(
        build_acquisition("qlognehvi", model, ctx), model, [pool[2:]], 4, X_pending=P
    )
    assert mine.indices == idx.tolist()
