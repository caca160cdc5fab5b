"""Network ensembles as BoTorch models: deep ensembles and MC dropout with fixed masks.

Both are `EnsembleModel`s whose `forward` returns `batch x s x n x m` member outputs, so every
BoTorch acquisition function works on them through `EnsemblePosterior`. Two traps shape the MC
dropout model: `EnsembleModel.posterior()` calls `eval()`, which turns `nn.Dropout` off (zero
spread, no error), and masks redrawn on every call would make acquisition values noisy. So the
dropout layers hold `T` fixed masks, drawn from a seed once per proposal round.

Inputs pass a fixed affine map first (`X @ A + c`): scaling to the unit cube for plain MLPs, or
the scatter of named element-fraction columns into ElemNet's 86-element layout. Outputs are
de-standardized, and each member's deviation from the ensemble mean is multiplied by the
calibration factor `sigma_scale`, which scales the predictive standard deviation and leaves the
mean unchanged.

Networks trained with a likelihood loss (`loss = "laplace_nll"` or `"gaussian_nll"`) also predict
their noise: `2m` outputs, a mean and a log scale per target. The members' means are the
posterior (what acquisition functions see: the latent property, as a GP's posterior without
observation noise), and `posterior(X, observation_noise=True)` is the predictive distribution of
a new measurement: each member `k` becomes two ensemble points `mu_k +- sigma_k` (scaled so the
variance is exactly the members' variance plus their mean noise variance, the deep-ensemble
mixture of Lakshminarayanan et al. 2017). That is what held-out statistics, calibration and
benchmarks score. The predicted noise is weighted by `noise_scale` first (a second calibration
factor), so the predictive variance is `sigma_scale^2 * (var_k(mu_k) + noise_scale^2 *
mean_k(sigma_k^2))`.

A model may carry an error model (`surrogates.error_model`, fitted on the calibration rows):
`posterior(X, observation_noise=True)` is then that mixture (or, for networks that predict no
noise, the members' spread) rescaled to the error model's standard deviation at each point; the
latent posterior is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from botorch.exceptions.errors import UnsupportedError
from botorch.models.ensemble import EnsembleModel
from botorch.posteriors.ensemble import EnsemblePosterior
from torch import nn

from surrogates.error_model import ErrorModel
from surrogates.nets import MLP
from surrogates.training import noise_sd

__all__ = ["InputMap", "DeepEnsembleModel", "MCDropoutModel"]


class InputMap(nn.Module):
    """A fixed affine map `d -> D` applied to model inputs: `X @ A + c`.

    Args:
        A: `d x D` matrix.
        c: `D` offset.
    """

    A: torch.Tensor
    c: torch.Tensor

    def __init__(self, A: torch.Tensor, c: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("A", A.float())
        self.register_buffer("c", c.float())

    @classmethod
    def unit_cube(cls, bounds: torch.Tensor) -> InputMap:
        """Scale each input from its `2 x d` bounds to `[0, 1]`."""
        lo, hi = bounds[0].float(), bounds[1].float()
        span = (hi - lo).clamp_min(1e-12)
        return cls(torch.diag(1.0 / span), -lo / span)

    @classmethod
    def scatter(cls, M: torch.Tensor) -> InputMap:
        """Place `d` named columns into a wider layout (`M` is `d x D`, 0/1)."""
        return cls(M, torch.zeros(M.shape[1]))

    @property
    def out_dim(self) -> int:
        return int(self.A.shape[1])

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return X.to(self.A) @ self.A + self.c


class _NetworkModel(EnsembleModel):
    """Shared parts: input map, de-standardization, calibration, noise, dtype and device."""

    y_mean: torch.Tensor
    y_std: torch.Tensor
    sigma_scale: torch.Tensor
    noise_scale: torch.Tensor

    def __init__(
        self,
        input_map: InputMap,
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
        sigma_scale: torch.Tensor | float = 1.0,
        noise: str | None = None,
        noise_scale: torch.Tensor | float = 1.0,
    ) -> None:
        super().__init__()
        if noise not in (None, "gaussian", "laplace"):
            raise ValueError(f"noise must be None, 'gaussian' or 'laplace', got {noise!r}")
        self.input_map = input_map
        m = int(y_mean.numel())
        self._num_outputs = m
        #: the noise distribution the networks predict (`None`: they predict means only)
        self.noise = noise
        self.register_buffer("y_mean", y_mean.float().reshape(m))
        self.register_buffer("y_std", y_std.float().reshape(m))
        scale = torch.as_tensor(sigma_scale, dtype=torch.float32).reshape(-1).expand(m).clone()
        self.register_buffer("sigma_scale", scale)
        nscale = torch.as_tensor(noise_scale, dtype=torch.float32).reshape(-1).expand(m).clone()
        self.register_buffer("noise_scale", nscale)
        #: trees that set the predictive spread (`set_error_model`), or `None`
        self.error_model: ErrorModel | None = None

    @property
    def device(self) -> torch.device:
        return self.y_mean.device

    @property
    def predicts_noise(self) -> bool:
        """Whether `posterior(X, observation_noise=True)` differs from the latent posterior:
        the networks predict their noise, or an error model sets the predictive spread."""
        return self.noise is not None or self.error_model is not None

    def _per_output(self, scale: torch.Tensor | float) -> torch.Tensor:
        return (
            torch.as_tensor(scale, dtype=torch.float32).reshape(-1).expand(self._num_outputs)
        ).to(self.y_mean)

    def set_sigma_scale(self, scale: torch.Tensor | float) -> None:
        self.sigma_scale = self._per_output(scale)

    def set_noise_scale(self, scale: torch.Tensor | float) -> None:
        self.noise_scale = self._per_output(scale)

    def set_error_model(self, error_model: ErrorModel | None) -> None:
        """Let `error_model` set the predictive spread (`None`: the networks' own again)."""
        self.error_model = error_model.to(self.device) if error_model is not None else None

    def _members(self, H: torch.Tensor) -> torch.Tensor:
        """`batch x s x n x m` (`2m` with noise) standardized network outputs for
        `batch x n x D` features."""
        raise NotImplementedError

    def _noise(self, out: torch.Tensor) -> torch.Tensor:
        """The members' noise standard deviations in target units from their raw outputs,
        weighted by `noise_scale`."""
        assert self.noise is not None
        return noise_sd(out[..., self._num_outputs :], self.noise) * self.y_std * self.noise_scale

    def member_values(self, H: torch.Tensor, observation_noise: bool = False) -> torch.Tensor:
        """Calibrated ensemble points in target units at `batch x n x D` features:
        `batch x s x n x m`, or `batch x 2s x n x m` with the members' noise."""
        return self.values_from(self._members(H), observation_noise, H)

    def values_from(
        self, out: torch.Tensor, observation_noise: bool = False, H: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`member_values` from the members' raw outputs `out` (`_members`); with an error
        model and `observation_noise`, the `batch x n x D` features `H` they came from too."""
        m = self._num_outputs
        mu = out[..., :m] * self.y_std + self.y_mean
        mean = mu.mean(dim=-3, keepdim=True)
        if not observation_noise or not self.predicts_noise:
            return mean + self.sigma_scale * (mu - mean)
        s = mu.shape[-3]
        if self.noise is not None:
            sd = self._noise(out)
            # the unbiased variance over the 2s points is then var_s(mu) + mean_k(sd_k^2)
            b = math.sqrt((2 * s - 1) / (2 * s))
            a = math.sqrt(s / (s - 1)) * b if s > 1 else 1.0
            dev = a * (mu - mean)
            pts = torch.cat([dev + b * sd, dev - b * sd], dim=-3)
        else:
            pts = mu - mean
        if self.error_model is None:
            return mean + self.sigma_scale * pts
        if H is None:
            raise ValueError("a model with an error model needs the features H of its outputs")
        if pts.shape[-3] < 2:
            # one point has no spread to rescale: two points at +- sd / sqrt(2)
            unit = torch.ones_like(pts) / math.sqrt(2.0)
            pts = torch.cat([unit, -unit], dim=-3)
        else:
            pts = pts / pts.var(dim=-3, keepdim=True).clamp_min(1e-24).sqrt()
        sd = self.error_model(H, out).to(pts) * self.y_std
        return mean + pts * sd.unsqueeze(-3)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """`batch x n x d` inputs (any dtype and device) to `batch x s x n x m` outputs in the
        inputs' dtype and device; gradients flow back to `X`."""
        return self.member_values(self.input_map(X.to(self.device))).to(X)

    def posterior(  # type: ignore[override]
        self,
        X: torch.Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | torch.Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> EnsemblePosterior:
        """BoTorch's ensemble posterior; with `observation_noise=True` and networks that
        predict their noise, the predictive distribution of a new measurement instead."""
        if isinstance(observation_noise, torch.Tensor):
            raise UnsupportedError("network ensembles predict their own noise; pass True")
        if not observation_noise or not self.predicts_noise:
            return super().posterior(
                X, output_indices=output_indices, posterior_transform=posterior_transform
            )
        self.eval()
        values = self.member_values(self.input_map(X.to(self.device)), True).to(X)
        if output_indices is not None:
            values = values[..., output_indices]
        post = EnsemblePosterior(values=values)
        return posterior_transform(posterior=post, X=X) if posterior_transform else post


class DeepEnsembleModel(_NetworkModel):
    """`K` independently trained networks; the posterior is their equally weighted mixture.

    Args:
        nets: The trained members (same input width `D` and `m` outputs).
        input_map: The fixed `d -> D` input map.
        y_mean, y_std: `m` target standardization the members were trained in.
        sigma_scale: Calibration factor for the spread (scalar or `m`).
        noise: `gaussian` or `laplace` when the members also output log scales.
        noise_scale: Weight of the predicted noise against the members' spread (`m`).
    """

    def __init__(
        self,
        nets: Sequence[MLP],
        input_map: InputMap,
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
        sigma_scale: torch.Tensor | float = 1.0,
        noise: str | None = None,
        noise_scale: torch.Tensor | float = 1.0,
    ) -> None:
        super().__init__(input_map, y_mean, y_std, sigma_scale, noise, noise_scale)
        if not nets:
            raise ValueError("an ensemble needs at least one member")
        self.nets = nn.ModuleList(nets)

    @property
    def num_members(self) -> int:
        return len(self.nets)

    def _members(self, H: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(H) for net in self.nets], dim=-3)


class MCDropoutModel(_NetworkModel):
    """One network with dropout, evaluated under `T` fixed dropout masks.

    The masks live in the network's `MaskedDropout` layers; `resample_masks(seed)` draws new
    ones (the surrogate does so once per fit, so once per proposal round).

    Args:
        net: The trained network (with at least one dropout layer).
        samples: Number of masks `T`.
        seed: Seed of the first set of masks.
    """

    def __init__(
        self,
        net: MLP,
        input_map: InputMap,
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
        *,
        samples: int,
        seed: int,
        sigma_scale: torch.Tensor | float = 1.0,
        noise: str | None = None,
        noise_scale: torch.Tensor | float = 1.0,
    ) -> None:
        super().__init__(input_map, y_mean, y_std, sigma_scale, noise, noise_scale)
        if not net.dropout_layers:
            raise ValueError("MC dropout needs a network with at least one dropout layer")
        if samples < 2:
            raise ValueError(f"MC dropout needs at least 2 masks, got {samples}")
        self.net = net
        self.samples = samples
        self.resample_masks(seed)

    @property
    def num_members(self) -> int:
        return self.samples

    def resample_masks(self, seed: int) -> None:
        """Draw `T` new masks for every dropout layer from `seed`."""
        self.mask_seed = int(seed)
        gen = torch.Generator().manual_seed(seed)
        for layer in self.net.dropout_layers:
            keep = torch.rand(self.samples, layer.width, generator=gen) >= layer.p
            layer.set_masks(keep.float().to(self.device))

    def _members(self, H: torch.Tensor) -> torch.Tensor:
        # one copy of the features per mask: `batch x T x n x D`
        Hs = H.unsqueeze(-3).expand(*H.shape[:-2], self.samples, *H.shape[-2:])
        return self.net(Hs)
