"""The GP baseline: fit, exact leave-one-out predictions, known noise, state reuse."""

from __future__ import annotations

import torch
from botorch.models import SingleTaskGP
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood

from surrogates import load_builtin, make_surrogate
from surrogates.base import UnknownSurrogateError
from surrogates.gp import loo_predictions

load_builtin()


def _data(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=g, dtype=torch.double)
    Y = (
        torch.sin(6 * X[:, :1])
        + X[:, 1:]
        + 0.05 * torch.randn(n, 1, generator=g, dtype=torch.double)
    )
    return X, Y


def test_loo_matches_refitting_without_the_point() -> None:
    X, Y = _data()
    model = SingleTaskGP(X, Y, outcome_transform=None)
    model.covar_module.lengthscale = 0.3
    mu, sd = loo_predictions(model)
    for i in (0, 7, 23):
        keep = torch.arange(X.shape[0]) != i
        other = SingleTaskGP(X[keep], Y[keep], outcome_transform=None)
        other.load_state_dict(model.state_dict())
        other.eval()
        post = other.posterior(X[i : i + 1], observation_noise=True)
        assert torch.allclose(mu[i], post.mean[0], atol=1e-5)
        assert torch.allclose(sd[i], post.variance[0].sqrt(), atol=1e-5)


def test_fit_gives_calibrated_heldout_predictions_in_original_units() -> None:
    X, Y = _data(40)
    Y = 100 + 50 * Y  # far from standardized units
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.double)
    res = make_surrogate("gp").fit(X, Y, bounds=bounds)
    err = (res.heldout_mean - Y).abs()
    assert res.heldout_mean.shape == (40, 1)
    assert float(err.mean()) < 0.2 * float(Y.std())
    z = (err / res.heldout_std).squeeze()
    assert 0.6 <= float((z <= 1.645).double().mean()) <= 1.0


def test_known_noise_uses_fixed_noise_likelihood_and_state_reuse_skips_fitting() -> None:
    X, Y = _data(20)
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.double)
    gp = make_surrogate("gp")
    res = gp.fit(X, Y, bounds=bounds, Yvar=torch.full_like(Y, 0.01))
    assert isinstance(res.model.likelihood, FixedNoiseGaussianLikelihood)
    again = gp.fit(X, Y, bounds=bounds, Yvar=torch.full_like(Y, 0.01), state=res.state)
    assert again.info["reused"] is True
    for k, v in res.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k


def test_unknown_surrogate_and_option_list_the_known_ones() -> None:
    try:
        make_surrogate("nope")
    except UnknownSurrogateError as err:
        assert "gp" in str(err)
    else:
        raise AssertionError("no error")
    try:
        make_surrogate("gp", {"max_pts": 3})
    except UnknownSurrogateError as err:
        assert "max_points" in str(err)
    else:
        raise AssertionError("no error")


def test_warm_start_begins_from_the_previous_hyperparameters() -> None:
    X, Y = _data(40)
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.double)
    assert (
        make_surrogate("gp")
        .fit(X, Y, bounds=bounds, warm_start=make_surrogate("gp").fit(X, Y, bounds=bounds).state)
        .info["warm_start"]
        is False
    )  # below warm_from (500): always from scratch
    gp = make_surrogate("gp", {"warm_from": 10})
    first = gp.fit(X[:36], Y[:36], bounds=bounds)
    assert first.info["warm_start"] is False
    warm = gp.fit(X, Y, bounds=bounds, warm_start=first.state)
    cold = gp.fit(X, Y, bounds=bounds)
    assert warm.info["warm_start"] is True
    # the same optimum from a nearby start: lengthscales and held-out predictions agree
    ls_w = warm.model.covar_module.lengthscale.detach()
    ls_c = cold.model.covar_module.lengthscale.detach()
    assert torch.allclose(ls_w, ls_c, rtol=0.05)
    assert torch.allclose(warm.heldout_mean, cold.heldout_mean, atol=0.02)
    # the outcome transform is refitted to the new data, not taken from the old fit
    assert warm.model.outcome_transform.means.shape == cold.model.outcome_transform.means.shape
    assert torch.allclose(warm.model.outcome_transform.means, cold.model.outcome_transform.means)
    # a fit of another shape (three outputs) cannot seed this one
    other = gp.fit(X, torch.cat([Y, Y, Y], -1), bounds=bounds)
    assert gp.fit(X, Y, bounds=bounds, warm_start=other.state).info["warm_start"] is False
