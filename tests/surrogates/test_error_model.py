"""The error model: trees stored as tensors, and the predictive spread they set."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.ensemble import GradientBoostingRegressor

from surrogates import UnknownSurrogateError, load_builtin, make_surrogate
from surrogates.ensemble import DeepEnsembleModel, InputMap
from surrogates.error_model import (
    ERROR_MODEL_MIN_ROWS,
    TREE_SETTINGS,
    ErrorModel,
    TreeEnsemble,
    error_features,
    fit_error_model,
)
from surrogates.nets import MLP, MLPConfig

load_builtin()


def _roundtrip(obj: object) -> object:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return torch.load(io.BytesIO(buf.getvalue()), weights_only=True)


def test_trees_evaluate_as_scikit_learn_and_survive_a_checkpoint() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((1500, 6)).astype(np.float32)
    y = np.sin(6 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.standard_normal(1500)
    gbr = GradientBoostingRegressor(**TREE_SETTINGS, random_state=0).fit(X, y)
    trees = TreeEnsemble.from_sklearn(gbr)
    Xt = rng.random((400, 6))
    want = gbr.predict(Xt.astype(np.float32))
    assert np.abs(trees(torch.from_numpy(Xt)).numpy() - want).max() < 1e-10
    assert torch.equal(trees(torch.from_numpy(Xt), chunk=7), trees(torch.from_numpy(Xt)))
    again = TreeEnsemble.from_state(_roundtrip(trees.to_state()))  # type: ignore[arg-type]
    assert torch.equal(again(torch.from_numpy(Xt)), trees(torch.from_numpy(Xt)))
    assert again.depth == TREE_SETTINGS["max_depth"]


def _hetero(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise 25x larger where x0 > 0.5: the error is in a region, not in the mean's shape."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 3, generator=g)
    sd = torch.where(X[:, 0] > 0.5, 0.5, 0.02)
    Y = torch.sin(4 * X[:, 1]) + X[:, 2] + sd * torch.randn(n, generator=g)
    return X.double(), Y.reshape(-1, 1).double()


def _sd(model: object, X: torch.Tensor) -> torch.Tensor:
    post = model.posterior(X, observation_noise=True)  # type: ignore[attr-defined]
    return post.variance.detach().sqrt().reshape(-1)


@pytest.mark.parametrize(
    ("name", "opts", "gain"),
    [
        # members that predict no noise: their spread alone misses the noisy region (the
        # default error_model, "auto", fits the trees with 600 calibration rows)
        ("ensemble", {"members": 3}, 0.2),
        # a noise head that can learn this noise from the training rows: the trees keep it
        (
            "mc-dropout",
            {"samples": 8, "dropout": 0.1, "loss": "laplace_nll", "error_model": "trees"},
            -0.05,
        ),
    ],
)
def test_the_error_model_finds_where_the_errors_are(name: str, opts: dict, gain: float) -> None:
    X, Y = _hetero(6000, 0)
    s = make_surrogate(
        name,
        {**opts, "hidden": [32, 32], "epochs": 20, "batch_size": 128},
    )
    fit = s.fit(X, Y, bounds=torch.stack([torch.zeros(3), torch.ones(3)]).double(), seed=0)
    assert fit.info["error_model"] == "trees"
    assert fit.info["error_model_rows"] == 600 >= ERROR_MODEL_MIN_ROWS
    assert fit.info["error_model_scale"] == fit.info["error_model_scales"]["curve"]
    model = fit.model
    assert model.predicts_noise
    Xt, Yt = _hetero(3000, 1)
    err = (Yt.reshape(-1) - model.posterior(Xt).mean.detach().reshape(-1)).abs()
    latent = model.posterior(Xt).variance.detach()
    sd = _sd(model, Xt)
    noisy = Xt[:, 0] > 0.5
    # the spread follows the noise region, within a factor 2 of the true 0.5 and 0.02 + error
    assert 0.25 < float(sd[noisy].median()) < 1.0 and float(sd[~noisy].median()) < 0.15
    rank = spearmanr(err, sd).statistic
    # against the networks' own spread (same networks)
    em = model.error_model
    model.set_error_model(None)
    plain = spearmanr(err, _sd(model, Xt)).statistic
    model.set_error_model(em)
    assert rank > 0.6 and rank > plain + gain
    # acquisition functions see the latent posterior, which the error model leaves alone
    assert torch.equal(model.posterior(Xt).variance.detach(), latent)
    # the stored held-out spreads are the trees' out-of-fold ones, calibrated
    assert fit.heldout_std.shape == (600, 1) and bool((fit.heldout_std > 0).all())
    # the checkpoint carries the trees and rebuilds the same predictive spread
    state = _roundtrip(fit.state)
    again = s.fit(X, Y, bounds=torch.stack([torch.zeros(3), torch.ones(3)]).double(), state=state)  # type: ignore[arg-type]
    assert again.model.error_model is not None
    assert torch.allclose(_sd(again.model, Xt), sd)


def test_too_few_calibration_rows_keep_the_networks_spread() -> None:
    X, Y = _hetero(1200, 0)
    # the default, "auto", as "trees" would: too few rows for the trees
    fit = make_surrogate("ensemble", {"members": 2, "hidden": [16], "epochs": 5}).fit(
        X, Y, bounds=torch.stack([torch.zeros(3), torch.ones(3)]).double(), seed=0
    )
    assert fit.info["error_model"] == "none" and fit.model.error_model is None
    assert "120 calibration rows, needs 500" in fit.info["error_model_skipped"]
    assert fit.state["error_model"] is None
    assert not fit.model.predicts_noise  # a plain ensemble: no predictive spread of its own


def test_error_model_none_keeps_the_networks_spread() -> None:
    bounds = torch.stack([torch.zeros(3), torch.ones(3)]).double()
    X, Y = _hetero(6000, 0)
    opts = {"members": 2, "hidden": [16], "epochs": 3, "batch_size": 256}
    off = make_surrogate("ensemble", {**opts, "error_model": "none"}).fit(
        X, Y, bounds=bounds, seed=0
    )
    assert off.info["error_model"] == "none" and "error_model_skipped" not in off.info
    assert off.model.error_model is None and off.state["error_model"] is None
    on = make_surrogate("ensemble", opts).fit(X, Y, bounds=bounds, seed=0)
    assert on.info["error_model"] == "trees" and on.model.error_model is not None
    # the same networks: only the spread differs
    assert torch.equal(on.heldout_mean, off.heldout_mean)
    assert not torch.equal(on.heldout_std, off.heldout_std)


def test_the_option_is_checked() -> None:
    with pytest.raises(UnknownSurrogateError, match="error_model .* auto, none, trees"):
        make_surrogate("elemnet-ensemble", {"error_model": "forest"})


def test_one_member_gets_two_points_at_the_error_models_spread() -> None:
    torch.manual_seed(0)
    net = MLP(MLPConfig(in_dim=2, widths=(8,), dropouts=(0.0,), out_dim=1)).eval()
    model = DeepEnsembleModel(
        [net], InputMap(torch.eye(2), torch.zeros(2)), torch.zeros(1), torch.full((1,), 2.0)
    )
    H = torch.rand(800, 2)
    with torch.no_grad():
        out = model._members(H)
    feats = error_features(H, out, 1, None, True)
    assert feats[0].shape == (800, 2 + 2)  # inputs, log spread, mean
    err = (0.05 + H[:, :1]).abs()  # standardized |error| growing with the first input
    em, oof = fit_error_model(feats, err, noise=None, use_inputs=True, seed=0)
    assert oof.shape == (800, 1)
    assert spearmanr(oof[:, 0], err[:, 0]).statistic > 0.9
    em.scale = torch.full((1,), 1.5)
    model.set_error_model(em)
    X = torch.tensor([[0.1, 0.5], [0.9, 0.5]])
    post = model.posterior(X, observation_noise=True)
    assert post.values.shape[-3] == 2  # +- sd / sqrt(2)
    want = em(X, model._members(X)).detach()[..., 0] * 2.0  # times y_std
    assert torch.allclose(post.variance.detach().sqrt().reshape(-1), want, rtol=1e-5)
    assert float(want[1]) > 3 * float(want[0])
    assert ErrorModel.from_state(_roundtrip(em.to_state())).scale.item() == 1.5  # type: ignore[arg-type]
