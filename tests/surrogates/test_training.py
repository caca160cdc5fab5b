"""The shared training loop: the optimizer option takes the step it names."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from surrogates import UnknownSurrogateError, load_builtin, make_surrogate
from surrogates.training import TrainConfig, train_network

load_builtin()


def _one_full_batch_step(config: TrainConfig) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    start = copy.deepcopy(net)
    X = torch.randn(16, 3)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]])
    train_network(net, X, y, config, device=torch.device("cpu"))
    start.zero_grad()
    nn.MSELoss()(start(X), y).backward()
    return net, start, X


def test_sgd_takes_a_plain_gradient_step() -> None:
    """One epoch, one full batch, no momentum or decay: w - lr * grad, exactly."""
    cfg = TrainConfig(
        max_epochs=1, batch_size=16, lr=0.1, weight_decay=0.0, optimizer="sgd", momentum=0.0
    )
    net, start, _ = _one_full_batch_step(cfg)
    assert start.weight.grad is not None
    expect = start.weight.detach() - 0.1 * start.weight.grad
    assert torch.allclose(net.weight.detach(), expect, atol=1e-6)
    # AdamW's first step has size lr in every coordinate, whatever the gradient
    adam, start, _ = _one_full_batch_step(
        TrainConfig(max_epochs=1, batch_size=16, lr=0.1, weight_decay=0.0)
    )
    step = (adam.weight.detach() - start.weight.detach()).abs()
    assert torch.allclose(step, torch.full_like(step, 0.1), atol=1e-4)
    assert not torch.allclose(adam.weight.detach(), expect, atol=1e-3)


def test_sgd_with_momentum_fits_and_bad_options_are_named() -> None:
    g = torch.Generator().manual_seed(1)
    X = torch.rand(40, 2, generator=g, dtype=torch.double)
    Y = (X[:, :1] * 2 - X[:, 1:]).double()
    s = make_surrogate(
        "ensemble",
        {"members": 2, "hidden": [16], "epochs": 200, "optimizer": "sgd", "lr": 0.05},
    )
    fit = s.fit(X, Y, bounds=torch.stack([torch.zeros(2), torch.ones(2)]).double(), seed=0)
    mean = fit.model.posterior(X).mean.squeeze(-1)
    assert float((mean - Y.squeeze(-1)).abs().mean()) < 0.15
    with pytest.raises(UnknownSurrogateError, match="optimizer"):
        make_surrogate("cgcnn-ensemble", {"optimizer": "rmsprop"})
    with pytest.raises(UnknownSurrogateError, match="momentum"):
        make_surrogate("ensemble", {"momentum": 1.5})
    with pytest.raises(ValueError, match="momentum"):
        TrainConfig(optimizer="sgd", momentum=1.0)


@pytest.mark.parametrize("loss", ["gaussian_nll", "laplace_nll"])
def test_likelihood_losses_learn_the_noise_level(loss: str) -> None:
    """Quiet on the left half, noisy on the right: the log-scale output learns both levels."""
    from surrogates.training import noise_sd

    g = torch.Generator().manual_seed(0)
    X = torch.rand(2000, 1, generator=g)
    true_sd = torch.where(X < 0.5, 0.1, 1.0)
    y = 2 * X + true_sd * torch.randn(2000, 1, generator=g)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    cfg = TrainConfig(max_epochs=60, batch_size=128, lr=3e-3, loss=loss)  # type: ignore[arg-type]
    train_network(net, X, y, cfg, device=torch.device("cpu"), seed=0)
    with torch.no_grad():
        out = net(torch.tensor([[0.2], [0.3], [0.7], [0.8]]))
    sd = noise_sd(out[:, 1:], "gaussian" if loss == "gaussian_nll" else "laplace").squeeze(-1)
    assert torch.allclose(sd[:2], torch.full((2,), 0.1), rtol=0.5), sd
    assert torch.allclose(sd[2:], torch.full((2,), 1.0), rtol=0.35), sd
    # the mean is still the trend
    assert torch.allclose(out[:2, 0], torch.tensor([0.4, 0.6]), atol=0.1), out


def test_likelihood_loss_needs_two_outputs_per_target() -> None:
    net = nn.Linear(3, 1)
    X, y = torch.randn(8, 3), torch.randn(8, 1)
    with pytest.raises(ValueError, match="needs 2 network outputs"):
        train_network(
            net, X, y, TrainConfig(max_epochs=1, loss="laplace_nll"), device=torch.device("cpu")
        )
    with pytest.raises(ValueError, match="laplace_nll"):
        TrainConfig(loss="nll")  # type: ignore[arg-type]
    with pytest.raises(UnknownSurrogateError, match="gaussian_nll"):
        make_surrogate("ensemble", {"loss": "huber"})


def test_linear_schedule_decays_the_rate_over_the_epochs_not_the_clock() -> None:
    """Plain SGD, one full batch per epoch, 4 epochs: steps of lr 0.1, 0.075, 0.05, 0.025."""
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    ref = copy.deepcopy(net)
    X = torch.randn(16, 3)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]])
    cfg = TrainConfig(
        max_epochs=4,
        batch_size=16,
        lr=0.1,
        weight_decay=0.0,
        optimizer="sgd",
        momentum=0.0,
        schedule="linear",
    )
    train_network(net, X, y, cfg, device=torch.device("cpu"))
    for lr in (0.1, 0.075, 0.05, 0.025):
        ref.zero_grad()
        nn.MSELoss()(ref(X), y).backward()
        with torch.no_grad():
            for p in ref.parameters():
                assert p.grad is not None
                p -= lr * p.grad
    assert torch.allclose(net.weight.detach(), ref.weight.detach(), atol=1e-6)
    assert torch.allclose(net.bias.detach(), ref.bias.detach(), atol=1e-6)
    with pytest.raises(UnknownSurrogateError, match="'linear' \\(over epochs\\)"):
        make_surrogate("ensemble", {"schedule": "cosine"})
    with pytest.raises(ValueError, match="'linear'"):
        TrainConfig(schedule="cosine")  # type: ignore[arg-type]
