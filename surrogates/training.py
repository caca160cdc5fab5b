"""The one training loop every network surrogate uses.

Targets arrive standardized; the loop runs AdamW (or SGD with momentum, CGCNN's published
optimizer) over shuffled mini-batches, watches a validation
split for early stopping (keeping the best weights), and stops at whichever comes first of the
epoch limit, the patience and the wall-clock budget. Mixed precision (bfloat16 autocast) is used
on CUDA only; the device is chosen once by the caller (`pick_device`) and passed in.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = [
    "TrainConfig",
    "TrainReport",
    "train_network",
    "pick_device",
    "predict",
    "LOSSES",
    "NOISE_LOSSES",
    "SCHEDULES",
    "noise_sd",
    "LOG_SCALE_LIMITS",
]

#: Training losses. The `*_nll` ones train a network with two outputs per target, a mean and a
#: log scale (heteroscedastic, aleatoric noise: Nix and Weigend 1994; the proper scoring rule
#: of deep ensembles, Lakshminarayanan et al. 2017), by the negative log likelihood of a
#: Gaussian or a Laplace distribution (the likelihood whose maximum is ElemNet's MAE loss).
LOSSES = ("mae", "mse", "gaussian_nll", "laplace_nll")
#: The losses that make a network predict its own noise, and the distribution each assumes.
NOISE_LOSSES = {"gaussian_nll": "gaussian", "laplace_nll": "laplace"}
#: Learning-rate schedules (see `TrainConfig.schedule`).
SCHEDULES = ("plateau", "budget", "linear")
#: Bounds on the predicted log scale in standardized units (`exp(-7)` is 0.1% of the target's
#: standard deviation): outside them the likelihood's gradient vanishes or explodes.
LOG_SCALE_LIMITS = (-7.0, 5.0)


def noise_sd(log_scale: torch.Tensor, noise: str) -> torch.Tensor:
    """The standard deviation of the noise distribution with the given (raw) log scale.

    Gaussian: the scale is the standard deviation; Laplace: `sd = sqrt(2) * b`.
    """
    sd = log_scale.clamp(*LOG_SCALE_LIMITS).exp()
    return sd * math.sqrt(2.0) if noise == "laplace" else sd


def pick_device(device: torch.device | str | None = None) -> torch.device:
    """`device` if given, else CUDA when present, else the CPU."""
    if device is not None:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda'") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible; use 'cpu'")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one network.

    Attributes:
        max_epochs: Upper limit on passes over the training data.
        patience: Stop after this many epochs without a better validation loss.
        time_budget: Wall-clock seconds for this network (`None`: no limit).
        batch_size: Mini-batch size.
        lr: Learning rate.
        weight_decay: Weight decay (AdamW: decoupled; SGD: L2).
        optimizer: `adamw`, or `sgd` with Nesterov-free momentum `momentum` (Xie and Grossman
            2018 trained CGCNN with SGD, momentum 0.9).
        momentum: SGD momentum (unused by AdamW).
        loss: `mae` (ElemNet's), `mse`, or `gaussian_nll` / `laplace_nll`, for which the
            network has `2m` outputs, `m` means then `m` log scales (see `LOSSES`).
        amp: Use bfloat16 autocast when training on CUDA.
        schedule: `plateau` halves the learning rate after `patience // 3` epochs without a
            better validation loss; `budget` decays it linearly to 2% over `time_budget` (the
            near-optimal rule for budgeted training, Li et al. 2020), so a fit uses its whole
            budget well; `linear` decays it the same way over `max_epochs`, so the schedule, and
            with a seed the fit, does not depend on how fast the machine is.
    """

    max_epochs: int = 500
    patience: int = 30
    time_budget: float | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-5
    loss: Literal["mae", "mse", "gaussian_nll", "laplace_nll"] = "mse"
    amp: bool = True
    schedule: Literal["plateau", "budget", "linear"] = "plateau"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.max_epochs}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ValueError(f"time_budget must be > 0 seconds, got {self.time_budget}")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be 'plateau', 'budget' or 'linear', got {self.schedule!r}"
            )
        if self.schedule == "budget" and self.time_budget is None:
            raise ValueError("schedule 'budget' needs a time_budget in seconds")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


@dataclass(frozen=True)
class TrainReport:
    """What one training run did.

    Attributes:
        epochs: Epochs run.
        best_epoch: Epoch whose weights were kept (1-based; the last when there is no validation).
        train_loss: Training loss of the last epoch (standardized units).
        val_loss: Best validation loss, or `None` without a validation split.
        seconds: Wall time.
        stopped: `patience`, `budget` or `epochs`.
        val_history: Validation loss after each epoch (empty without a validation split).
    """

    epochs: int
    best_epoch: int
    train_loss: float
    val_loss: float | None
    seconds: float
    stopped: str
    val_history: tuple[float, ...] = ()


def _nll(noise: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    lo, hi = LOG_SCALE_LIMITS

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = y.shape[-1]
        if out.shape[-1] != 2 * m:
            raise ValueError(
                f"loss '{noise}_nll' needs {2 * m} network outputs (a mean and a log scale per "
                f"target), got {out.shape[-1]}"
            )
        mu, log_s = out[..., :m], out[..., m:].clamp(lo, hi)
        r = (y - mu) * torch.exp(-log_s)
        # the negative log likelihood up to a constant, per target value
        per = log_s + 0.5 * r * r if noise == "gaussian" else log_s + r.abs()
        return per.mean()

    return loss


def _loss_fn(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if kind in NOISE_LOSSES:
        return _nll(NOISE_LOSSES[kind])
    return nn.L1Loss() if kind == "mae" else nn.MSELoss()


def train_network(
    net: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    *,
    X_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    seed: int = 0,
    device: torch.device,
) -> TrainReport:
    """Train `net` in place on `n x d` inputs and `n x m` standardized targets (the network
    has `m` outputs, or `2m` with a noise-predicting loss).

    Args:
        X_val, y_val: Validation split for early stopping; without one the loop runs
            `config.max_epochs` (or until the budget) and keeps the last weights.
        seed: Seeds the mini-batch order and dropout.
        device: Where to train; the data are moved there once.
    """
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net.to(device)
    X = X.to(device=device, dtype=torch.float32)
    y = y.to(device=device, dtype=torch.float32)
    has_val = X_val is not None and y_val is not None and X_val.shape[0] > 0
    if has_val:
        assert X_val is not None and y_val is not None
        X_val = X_val.to(device=device, dtype=torch.float32)
        y_val = y_val.to(device=device, dtype=torch.float32)
    opt: torch.optim.Optimizer
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(
            net.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = _loss_fn(config.loss)
    use_amp = config.amp and device.type == "cuda"
    n = X.shape[0]
    bs = min(config.batch_size, n)
    best = math.inf
    best_state = None
    best_epoch = 0
    epoch = 0
    train_loss = math.nan
    stopped = "epochs"
    history: list[float] = []
    lr = config.lr
    lr_patience = max(2, config.patience // 3)
    for epoch in range(1, config.max_epochs + 1):
        net.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            if config.schedule in ("budget", "linear"):
                if config.schedule == "budget":
                    assert config.time_budget is not None
                    frac = (time.perf_counter() - t0) / config.time_budget
                else:
                    frac = (epoch - 1 + start / n) / config.max_epochs
                lr = config.lr * max(0.02, 1.0 - frac)
                for group in opt.param_groups:
                    group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = net(X[idx])
            loss = loss_fn(out.float(), y[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        train_loss = total / n
        if has_val:
            assert X_val is not None and y_val is not None
            val = float(loss_fn(predict(net, X_val, device=device), y_val))
            history.append(val)
            # an improvement must be worth having (0.1%), or slow creep would never stop
            if val < best - max(1e-7, 1e-3 * abs(best) if math.isfinite(best) else 0.0):
                best, best_epoch = val, epoch
                best_state = copy.deepcopy(net.state_dict())
            elif epoch - best_epoch >= config.patience:
                stopped = "patience"
                break
            elif config.schedule == "plateau" and (epoch - best_epoch) % lr_patience == 0:
                lr = max(lr * 0.5, config.lr * 1e-3)
                for group in opt.param_groups:
                    group["lr"] = lr
        else:
            best_epoch = epoch
        if config.time_budget is not None and time.perf_counter() - t0 > config.time_budget:
            stopped = "budget"
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return TrainReport(
        epochs=epoch,
        best_epoch=best_epoch,
        train_loss=train_loss,
        val_loss=best if has_val else None,
        seconds=time.perf_counter() - t0,
        stopped=stopped,
        val_history=tuple(history),
    )


def predict(
    net: nn.Module, X: torch.Tensor, *, device: torch.device, chunk: int = 65536
) -> torch.Tensor:
    """`n x m` eval-mode float32 outputs of `net` over `n x d` inputs, in chunks, on `device`."""
    was_training = net.training
    net.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, X.shape[0], chunk):
            xb = X[start : start + chunk].to(device=device, dtype=torch.float32)
            outs.append(net(xb).float())
    net.train(was_training)
    if not outs:
        return torch.zeros(0, 1, device=device)
    return torch.cat(outs)
