"""Deep ensembles and MC dropout as BoTorch models: shapes, spread, masks, gradients, warm start."""

from __future__ import annotations

import pytest
import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.monte_carlo import qUpperConfidenceBound

from acquisition import AcquisitionContext, build_acquisition, optimize_pool
from surrogates import UnknownSurrogateError, load_builtin, make_surrogate
from surrogates.ensemble import DeepEnsembleModel, MCDropoutModel
from surrogates.featurizers import ELEMNET_ELEMENTS
from surrogates.neural import SurrogateInputError

load_builtin()

FAST = {"epochs": 60, "hidden": [16, 16], "patience": 10}


def _data(n: int = 30, d: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.double)
    Y = torch.sin(3 * X.sum(-1, keepdim=True)) + 0.05 * torch.randn(n, 1, generator=g).double()
    return X, Y


def _bounds(d: int) -> torch.Tensor:
    return torch.stack([torch.zeros(d), torch.ones(d)]).double()


@pytest.mark.parametrize(
    ("name", "opts", "members"),
    [("ensemble", {"members": 4}, 4), ("mc-dropout", {"samples": 8, "dropout": 0.2}, 8)],
)
def test_posterior_shapes_and_spread(name: str, opts: dict, members: int) -> None:
    X, Y = _data()
    fit = make_surrogate(name, {**FAST, **opts}).fit(X, Y, bounds=_bounds(3), seed=1)
    Xt = torch.rand(5, 3, dtype=torch.double)
    post = fit.model.posterior(Xt)
    assert post.mean.shape == (5, 1)
    assert post.values.shape == (members, 5, 1)
    assert post.mean.dtype == torch.double
    assert bool((post.variance > 0).all()), "an ensemble posterior must have spread"
    batched = fit.model.posterior(torch.rand(2, 3, 3, dtype=torch.double))
    assert batched.values.shape == (2, members, 3, 1)


def test_ensemble_members_are_cross_fitted_and_calibrated() -> None:
    X, Y = _data(n=40)
    sur = make_surrogate("ensemble", {**FAST, "members": 4, "calibrate": "rms"})
    fit = sur.fit(X, Y, bounds=_bounds(3), seed=0)
    # every row has an out-of-fold prediction
    assert fit.heldout_index is None
    assert fit.heldout_mean.shape == (40, 1) and fit.heldout_std.shape == (40, 1)
    assert fit.info["calibrated"] is True
    s = float(fit.info["sigma_scale"])
    # the stored spread is the calibrated one: z-scores of held-out errors have unit RMS
    z = (Y - fit.heldout_mean) / fit.heldout_std
    assert float(z.pow(2).mean().sqrt()) == pytest.approx(1.0, rel=1e-3)
    assert s > 0 and s != 1.0


def test_a_one_member_ensemble_trains_on_every_row() -> None:
    # one member cannot hold a fold out of its own data (it used to train on no rows at all)
    X, Y = _data(n=30)
    fit = make_surrogate("ensemble", {**FAST, "members": 1}).fit(X, Y, bounds=_bounds(3), seed=0)
    assert fit.info["epochs"][0] > 1
    pred = fit.model.posterior(X).mean
    assert float((pred - Y).abs().mean()) < float((Y - Y.mean()).abs().mean())


def test_dropout_masks_fixed_within_a_round_and_new_between_rounds() -> None:
    X, Y = _data()
    sur = make_surrogate("mc-dropout", {**FAST, "samples": 6, "dropout": 0.3})
    fit = sur.fit(X, Y, bounds=_bounds(3), seed=3)
    model = fit.model
    assert isinstance(model, MCDropoutModel)
    Xt = torch.rand(4, 3, dtype=torch.double)
    a = model.posterior(Xt).values
    b = model.posterior(Xt).values
    assert torch.equal(a, b), "masks must not change between calls of one round"
    # posterior() calls eval(); the spread must survive it (plain nn.Dropout would give zero)
    assert float(a.std(0).max()) > 0
    model.resample_masks(99)
    c = model.posterior(Xt).values
    assert not torch.equal(a, c)
    # the next round (one more measurement) draws other masks
    X2, Y2 = _data(n=31)
    fit2 = sur.fit(X2, Y2, bounds=_bounds(3), seed=3)
    masks1 = [layer.masks for layer in fit.model.net.dropout_layers]
    masks2 = [layer.masks for layer in fit2.model.net.dropout_layers]
    assert any(not torch.equal(m1, m2) for m1, m2 in zip(masks1, masks2))


@pytest.mark.parametrize("name", ["ensemble", "mc-dropout"])
def test_acquisition_values_finite_and_differentiable(name: str) -> None:
    X, Y = _data()
    fit = make_surrogate(
        name,
        {**FAST, "samples": 8, "dropout": 0.2} if name == "mc-dropout" else {**FAST, "members": 3},
    ).fit(X, Y, bounds=_bounds(3), seed=0)
    for acq in ("qucb", "qlognei", "qlogei"):
        acqf = build_acquisition(acq, fit.model, AcquisitionContext(X_baseline=X, Y=Y, seed=0))
        Xq = torch.rand(4, 2, 3, dtype=torch.double, requires_grad=True)
        val = acqf(Xq)
        assert val.shape == (4,)
        assert bool(torch.isfinite(val).all())
        val.sum().backward()
        assert Xq.grad is not None and bool(torch.isfinite(Xq.grad).all())
        assert float(Xq.grad.abs().sum()) > 0
    assert isinstance(
        build_acquisition("qucb", fit.model, AcquisitionContext(X_baseline=X, Y=Y, seed=0)),
        qUpperConfidenceBound,
    )
    assert isinstance(
        build_acquisition("qlognei", fit.model, AcquisitionContext(X_baseline=X, Y=Y, seed=0)),
        qLogNoisyExpectedImprovement,
    )


def test_member_sampler_gives_the_exact_ensemble_mean() -> None:
    X, Y = _data()
    fit = make_surrogate("ensemble", {**FAST, "members": 3}).fit(X, Y, bounds=_bounds(3), seed=0)
    acqf = build_acquisition(
        "qucb", fit.model, AcquisitionContext(X_baseline=X, Y=Y, seed=0), {"beta": 0.0}
    )
    Xt = torch.rand(6, 1, 3, dtype=torch.double)
    with torch.no_grad():
        # beta = 0: qUCB is the mean over samples, which must be the ensemble mean exactly
        assert torch.allclose(acqf(Xt), fit.model.posterior(Xt).mean.reshape(-1), atol=1e-10)


def test_pool_choice_with_pending_points() -> None:
    X, Y = _data()
    fit = make_surrogate("ensemble", {**FAST, "members": 3}).fit(X, Y, bounds=_bounds(3), seed=0)
    pool = torch.rand(50, 3, dtype=torch.double)
    ctx = AcquisitionContext(X_baseline=X, Y=Y, X_pending=pool[:2], seed=0)
    idx, values = optimize_pool(build_acquisition("qlognei", fit.model, ctx), pool, 3)
    assert len(set(int(i) for i in idx)) == 3
    assert bool(torch.isfinite(values).all())


def test_state_rebuilds_the_same_model_and_warm_start_is_short() -> None:
    X, Y = _data(n=40)
    sur = make_surrogate("ensemble", {"hidden": [16, 16], "members": 2, "epochs": 200})
    fit = sur.fit(X, Y, bounds=_bounds(3), seed=0)
    buf = __import__("io").BytesIO()
    torch.save(fit.state, buf)
    state = torch.load(__import__("io").BytesIO(buf.getvalue()), weights_only=True)
    again = sur.fit(X, Y, bounds=_bounds(3), seed=0, state=state)
    Xt = torch.rand(5, 3, dtype=torch.double)
    with torch.no_grad():
        assert torch.allclose(fit.model.posterior(Xt).mean, again.model.posterior(Xt).mean)
        assert torch.allclose(fit.model.posterior(Xt).variance, again.model.posterior(Xt).variance)
    X2, Y2 = _data(n=44)
    warm = sur.fit(X2, Y2, bounds=_bounds(3), seed=1, warm_start=fit.state)
    assert warm.info["warm_start"] is True
    cold = sur.fit(X2, Y2, bounds=_bounds(3), seed=1)
    assert sum(warm.info["epochs"]) < sum(cold.info["epochs"])


def test_elemnet_reads_named_element_columns() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.rand(30, 3, generator=g, dtype=torch.double)
    X = w / w.sum(-1, keepdim=True)  # fractions of Fe, Ni, O
    Y = (X[:, :1] - 2 * X[:, 2:]).double()
    sur = make_surrogate("elemnet-ensemble", {"size": "tiny", "members": 2, "epochs": 20})
    fit = sur.fit(X, Y, bounds=_bounds(3), seed=0, input_names=["Fe", "Ni", "O"])
    assert isinstance(fit.model, DeepEnsembleModel)
    assert fit.model.input_map.out_dim == len(ELEMNET_ELEMENTS)
    assert fit.model.posterior(X[:4]).mean.shape == (4, 1)
    with pytest.raises(SurrogateInputError, match="temperature"):
        sur.fit(X, Y, bounds=_bounds(3), seed=0, input_names=["Fe", "Ni", "temperature"])


def test_bad_options_name_the_option() -> None:
    with pytest.raises(UnknownSurrogateError, match="membrs"):
        make_surrogate("ensemble", {"membrs": 3})
    with pytest.raises(UnknownSurrogateError, match="size"):
        make_surrogate("elemnet-ensemble", {"size": "huge"})
    with pytest.raises(UnknownSurrogateError, match="lr"):
        make_surrogate("mc-dropout", {"lr": -1})


def test_elemnet_dropout_follows_size_family_and_option() -> None:
    from surrogates.nets import ELEMNET_BLOCKS, elemnet_config

    published = [p for _, n, p in ELEMNET_BLOCKS for i in range(n) if i == n - 1 and p > 0]
    assert [p for p in elemnet_config("full").dropouts if p > 0] == published
    half = elemnet_config("small", dropout_scale=0.5).dropouts
    assert [p for p in half if p > 0] == [p / 2 for p in published]
    assert not any(elemnet_config("small", dropout_scale=0.0).dropouts)
    with pytest.raises(ValueError, match="dropout_scale"):
        elemnet_config("full", dropout_scale=4.0)

    def arch(name: str, **opts: object) -> tuple[float, ...]:
        sur = make_surrogate(name, opts)
        return sur._arch(len(ELEMNET_ELEMENTS), 1).dropouts

    # the published rates at full size; at the narrow sizes ensemble members train without
    # dropout (it cost accuracy there) while MC dropout keeps some, since it is its uncertainty
    assert arch("elemnet-ensemble", size="full") == elemnet_config("full").dropouts
    assert not any(arch("elemnet-ensemble", size="small"))
    assert any(arch("elemnet-dropout", size="small"))
    assert (
        arch("elemnet-ensemble", size="small", dropout_scale=1.0)
        == elemnet_config("small").dropouts
    )
    with pytest.raises(UnknownSurrogateError, match="dropout_scale"):
        make_surrogate("elemnet-dropout", {"dropout_scale": 5})


def test_mc_dropout_fine_tunes_from_an_ensemble_without_dropout() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.rand(40, 3, generator=g, dtype=torch.double)
    X = w / w.sum(-1, keepdim=True)
    Y = (X[:, :1] - 2 * X[:, 2:]).double()
    names = ["Fe", "Ni", "O"]
    base = make_surrogate("elemnet-ensemble", {"size": "tiny", "members": 2, "epochs": 10})
    pre = base.fit(X, Y, bounds=_bounds(3), seed=0, input_names=names)
    assert not any(pre.info["arch"]["dropouts"])
    mcd = make_surrogate("elemnet-dropout", {"size": "tiny", "samples": 4, "epochs": 10})
    fit = mcd.fit(X, Y, bounds=_bounds(3), seed=0, input_names=names, warm_start=pre.state)
    assert fit.info["warm_start"] is True and any(fit.info["arch"]["dropouts"])
    assert float(fit.model.posterior(X[:5]).variance.min()) > 0


def test_calibration_factors_fit_gaussian_and_heavy_tailed_errors() -> None:
    from loop.benchmark.uq_metrics import miscalibration_area
    from surrogates.neural import calibration_factors

    g = torch.Generator().manual_seed(0)
    n = 20000
    sd = torch.full((n, 1), 0.5)
    # Gaussian errors twice as large as claimed: both factors find 2
    err = 2 * 0.5 * torch.randn(n, 1, generator=g)
    f = calibration_factors(err, torch.zeros(n, 1), sd)
    assert float(f["rms"]) == pytest.approx(2.0, rel=0.03)
    assert float(f["curve"]) == pytest.approx(2.0, rel=0.05)
    # Student-t (3 dof) errors: the tails inflate the rms factor; the curve factor is smaller
    # and leaves the smaller miscalibration area on the same points
    torch.manual_seed(1)
    t = torch.distributions.StudentT(3.0).sample((n, 1))
    f = calibration_factors(t, torch.zeros(n, 1), sd)
    assert float(f["curve"]) < 0.8 * float(f["rms"])
    zero = torch.zeros(n)
    area_rms = miscalibration_area(t[:, 0], zero, (sd * f["rms"])[:, 0])
    area_curve = miscalibration_area(t[:, 0], zero, (sd * f["curve"])[:, 0])
    assert area_curve < 0.5 * area_rms


def test_calibrate_option_picks_the_applied_factor() -> None:
    X, Y = _data(n=40)
    fit = make_surrogate("ensemble", {**FAST, "members": 3, "calibrate": "curve"}).fit(
        X, Y, bounds=_bounds(3), seed=0
    )
    assert fit.info["calibration"] == "curve"
    assert fit.info["sigma_scale"] == pytest.approx(fit.info["sigma_scales"]["curve"], rel=1e-5)
    off = make_surrogate("ensemble", {**FAST, "members": 3, "calibrate": False}).fit(
        X, Y, bounds=_bounds(3), seed=0
    )
    assert off.info["calibration"] == "none" and off.info["sigma_scale"] == 1.0
    with pytest.raises(UnknownSurrogateError, match="calibrate"):
        make_surrogate("ensemble", {"calibrate": "isotonic"})


def _noisy_data(n: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A trend with noise sd 0.05 where x0 < 0.5 and 0.5 above it."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=g, dtype=torch.double)
    sd = torch.where(X[:, :1] < 0.5, 0.05, 0.5).double()
    return X, X[:, 1:] * 2 + sd * torch.randn(n, 1, generator=g).double()


@pytest.mark.parametrize(
    ("name", "opts", "points"),
    [
        ("ensemble", {"members": 3}, 3),
        ("mc-dropout", {"samples": 4, "dropout": 0.1}, 4),
    ],
)
@pytest.mark.parametrize("loss", ["laplace_nll", "gaussian_nll"])
def test_networks_that_predict_their_noise(name: str, opts: dict, points: int, loss: str) -> None:
    from botorch.exceptions.errors import UnsupportedError

    X, Y = _noisy_data()
    sur = make_surrogate(name, {**opts, "hidden": [32, 32], "epochs": 150, "loss": loss})
    fit = sur.fit(X, Y, bounds=_bounds(2), seed=0)
    model = fit.model
    assert model.predicts_noise and fit.info["noise"] == loss.split("_")[0]
    Xt = torch.rand(200, 2, dtype=torch.double)
    with torch.no_grad():
        latent = model.posterior(Xt)
        pred = model.posterior(Xt, observation_noise=True)
        # the latent posterior has one point per member; the predictive one two
        assert latent.values.shape == (points, 200, 1)
        assert pred.values.shape == (2 * points, 200, 1)
        assert torch.allclose(pred.mean, latent.mean, atol=1e-6)
        # predictive variance: the members' variance plus their mean noise variance, exactly
        H = model.input_map(Xt.float())
        out = model._members(H)
        noise_var = (model._noise(out) * model.sigma_scale).pow(2).mean(0)
        assert torch.allclose(pred.variance.float(), latent.variance.float() + noise_var, rtol=1e-4)
        # the learned noise follows the data (ten times larger on the noisy half); dropout
        # masks add the same epistemic spread to both halves
        quiet = Xt[:, :1] < 0.4
        loud = Xt[:, :1] > 0.6
        sd = pred.variance.sqrt()
        assert float(sd[loud].mean()) > 2.5 * float(sd[quiet].mean())
    # held-out spreads are the predictive ones, whose noise part (most of the spread here)
    # calibration then barely has to scale; the weight of the noise is stored with the fit
    w = float(fit.info["noise_scale"])
    assert 0.5 < float(fit.info["sigma_scale"]) * w < 2.0
    assert 0.1 <= w <= 10 and float(fit.state["noise_scale"][0]) == pytest.approx(w)
    assert float(model.noise_scale[0]) == pytest.approx(w)
    with pytest.raises(UnsupportedError, match="own noise"):
        model.posterior(Xt, observation_noise=torch.ones(200, 1))
    # the checkpoint round-trips with its noise
    buf = __import__("io").BytesIO()
    torch.save(fit.state, buf)
    state = torch.load(__import__("io").BytesIO(buf.getvalue()), weights_only=True)
    again = sur.fit(X, Y, bounds=_bounds(2), seed=0, state=state).model
    with torch.no_grad():
        assert torch.allclose(
            again.posterior(Xt, observation_noise=True).variance, pred.variance, atol=1e-6
        )
    # acquisition sees the latent posterior and stays differentiable
    acqf = build_acquisition("qucb", model, AcquisitionContext(X_baseline=X, Y=Y, seed=0))
    Xq = torch.rand(3, 2, 2, dtype=torch.double, requires_grad=True)
    acqf(Xq).sum().backward()
    assert Xq.grad is not None and bool(torch.isfinite(Xq.grad).all())


def _laplace_errors(sd: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    u = torch.rand(sd.shape, generator=g) - 0.5
    return -(sd / 2**0.5) * torch.sign(u) * torch.log1p(-2 * u.abs())


@pytest.mark.parametrize("true_w", [0.25, 1.0, 4.0])
def test_noise_weight_recovers_how_much_the_noise_counts(true_w: float) -> None:
    from surrogates.neural import noise_weights

    g = torch.Generator().manual_seed(0)
    k = 4000
    spread = 0.1 + torch.rand(k, 2, generator=g)
    noise = 0.1 + torch.rand(k, 2, generator=g)
    sd = (spread**2 + torch.tensor([true_w, 1.0]) ** 2 * noise**2).sqrt()
    # an overall scale off by 1.7 is the spread factor's job, not the weight's
    y = 1.7 * _laplace_errors(sd, g)
    w = noise_weights(y, torch.zeros(k, 2), spread**2, noise**2)
    assert float(w[0]) == pytest.approx(true_w, rel=0.25)
    assert float(w[1]) == pytest.approx(1.0, rel=0.25)


def test_weighing_the_noise_is_opt_in_and_checked() -> None:
    X, Y = _noisy_data()
    opts = {"members": 2, "hidden": [16, 16], "epochs": 40, "loss": "laplace_nll"}
    off = make_surrogate("ensemble", opts).fit(X, Y, bounds=_bounds(2), seed=0)
    assert off.info["noise_scale"] == 1.0 and float(off.model.noise_scale[0]) == 1.0
    sur = make_surrogate("ensemble", {**opts, "weigh_noise": True})
    on = sur.fit(X, Y, bounds=_bounds(2), seed=0)
    # the fitted weight is used by the model and round-trips through its checkpoint
    w = float(on.info["noise_scale"])
    assert 0.1 <= w <= 10 and float(on.model.noise_scale[0]) == pytest.approx(w)
    again = sur.fit(X, Y, bounds=_bounds(2), seed=0, state=on.state).model
    assert float(again.noise_scale[0]) == pytest.approx(w)
    with pytest.raises(UnknownSurrogateError, match="weigh_noise .* true or false"):
        make_surrogate("ensemble", {**opts, "weigh_noise": "yes"})


def test_warm_start_between_noise_and_plain_networks() -> None:
    X, Y = _noisy_data(n=200)
    b = _bounds(2)
    plain = make_surrogate("ensemble", {"members": 2, "hidden": [16, 16], "epochs": 60})
    noisy = make_surrogate(
        "ensemble", {"members": 2, "hidden": [16, 16], "epochs": 60, "loss": "laplace_nll"}
    )
    p = plain.fit(X, Y, bounds=b, seed=0)
    # plain -> noise: the head gains log-scale rows, set from the refit's residuals
    n1 = noisy.fit(X, Y, bounds=b, seed=1, warm_start=p.state)
    assert n1.info["warm_start"] is True and n1.model.nets[0].head.out_features == 2
    assert bool(torch.isfinite(n1.model.posterior(X, observation_noise=True).variance).all())
    # noise -> noise keeps them; noise -> plain drops them
    n2 = noisy.fit(X, Y, bounds=b, seed=2, warm_start=n1.state)
    assert n2.info["warm_start"] is True
    p2 = plain.fit(X, Y, bounds=b, seed=2, warm_start=n1.state)
    assert p2.info["warm_start"] is True and p2.model.nets[0].head.out_features == 1
    assert not p2.model.predicts_noise
    mae = float((p2.model.posterior(X).mean - Y).abs().mean())
    assert mae < float((Y - Y.mean()).abs().mean())
