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
