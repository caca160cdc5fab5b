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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from botorch.models.ensemble import EnsembleModel
from torch import nn

from surrogates.nets import MLP

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
    """Shared parts: input map, de-standardization, calibration, dtype and device handling."""

    y_mean: torch.Tensor
    y_std: torch.Tensor
    sigma_scale: torch.Tensor

    def __init__(
        self,
        input_map: InputMap,
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
        sigma_scale: torch.Tensor | float = 1.0,
    ) -> None:
        super().__init__()
        self.input_map = input_map
        m = int(y_mean.numel())
        self._num_outputs = m
        self.register_buffer("y_mean", y_mean.float().reshape(m))
        self.register_buffer("y_std", y_std.float().reshape(m))
        scale = torch.as_tensor(sigma_scale, dtype=torch.float32).reshape(-1).expand(m).clone()
        self.register_buffer("sigma_scale", scale)

    @property
    def device(self) -> torch.device:
        return self.y_mean.device

    def set_sigma_scale(self, scale: torch.Tensor | float) -> None:
        self.sigma_scale = (
            torch.as_tensor(scale, dtype=torch.float32).reshape(-1).expand(self._num_outputs)
        ).to(self.y_mean)

    def _members(self, H: torch.Tensor) -> torch.Tensor:
        """`batch x s x n x m` standardized member outputs for `batch x n x D` features."""
        raise NotImplementedError

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """`batch x n x d` inputs (any dtype and device) to `batch x s x n x m` outputs in the
        inputs' dtype and device; gradients flow back to `X`."""
        H = self.input_map(X.to(self.device))
        out = self._members(H) * self.y_std + self.y_mean
        mean = out.mean(dim=-3, keepdim=True)
        out = mean + self.sigma_scale * (out - mean)
        return out.to(X)


class DeepEnsembleModel(_NetworkModel):
    """`K` independently trained networks; the posterior is their equally weighted mixture.

    Args:
        nets: The trained members (same input width `D` and `m` outputs).
        input_map: The fixed `d -> D` input map.
        y_mean, y_std: `m` target standardization the members were trained in.
        sigma_scale: Calibration factor for the spread (scalar or `m`).
    """

    def __init__(
        self,
        nets: Sequence[MLP],
        input_map: InputMap,
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
        sigma_scale: torch.Tensor | float = 1.0,
    ) -> None:
        super().__init__(input_map, y_mean, y_std, sigma_scale)
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
    ) -> None:
        super().__init__(input_map, y_mean, y_std, sigma_scale)
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
